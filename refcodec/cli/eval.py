"""The ``refcodec eval`` subcommand: evaluation on real networks (refcodec.evaluation).

Wire it into the command line with ``add_parser(subparsers)``; the handler returns an
exit code (0 ok, 2 usage error or missing evaluation assets, 130 interrupted: the finished
jobs are in the results store and ``--resume`` continues).  ``tools/eval.py`` runs the
same code.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from pathlib import Path

ALL_CONFIGS = ("baseline", "uniform", "10bit", "per_channel", "tiled")
EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
STORE_NAME = "store.sqlite"


def _images_arg(text: str):
    return int(text) if text.isdigit() else text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--networks", nargs="+", default=None,
                   choices=["mobilenet_v2", "craft"],
                   help="built-in networks (default: both, or none when --model is given)")
    p.add_argument("--model", action="append", default=[], metavar="[NAME=]ARCH:WEIGHTS",
                   help="a network of refcodec.evaluation.ARCHITECTURES (mobilenet_v2, "
                        "resnet18/34/50/101/152: torchvision parameter names) with a local "
                        "weights file (a torchvision state_dict), e.g. "
                        "resnet50:/data/resnet50-0676ba61.pth; its split points (submodule "
                        "names) with --splits ARCH:layer2,layer3 (repeatable)")
    p.add_argument("--splits", action="append", default=[], metavar="NET:S1,S2",
                   help="split points of a network, e.g. mobilenet_v2:conv3,conv5 "
                        "(repeatable; default: all of a built-in network)")
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
    p.add_argument("--images", type=_images_arg, default=36, metavar="N|DIR|LIST",
                   help="inputs of the classification networks: N = the first N bundled "
                        "inputs (derived from scikit-image photographs; 1..828, default 36), "
                        "a folder of images (recursively; ImageNet's validation layout of "
                        "class folders gives labels), or a list file")
    p.add_argument("--list", metavar="FILE",
                   help="a file of image paths, one a line (relative to the file's folder; "
                        "an optional label after a tab); same as --images FILE")
    p.add_argument("--labels", metavar="FILE",
                   help="labels of the --images folder: 'NAME LABEL' lines (class index or "
                        "WordNet id); adds top-1 accuracy to the statistics")
    p.add_argument("--detection-images", type=_images_arg, default=6, metavar="N|DIR|LIST",
                   help="inputs of the detector (N bundled: 1..16, default 6; or a folder or "
                        "list file)")
    p.add_argument("-j", "--workers", type=int, default=2,
                   help="Dask worker processes of the LocalCluster (default 2; 1 runs in "
                        "this process unless --engine dask)")
    p.add_argument("--engine", choices=["auto", "dask", "serial"], default="auto",
                   help="dask (LocalCluster or --scheduler), serial (a plain loop in this "
                        "process) or auto (default: dask unless --workers 1)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="use the Dask cluster at this scheduler address (e.g. "
                        "tcp://10.0.0.5:8786) instead of a LocalCluster")
    p.add_argument("--no-dashboard", action="store_true",
                   help="no Dask dashboard for the LocalCluster")
    p.add_argument("--store", metavar="PATH",
                   help=f"results store (SQLite; default OUT/{STORE_NAME}); every finished "
                        "job is written to it at once")
    p.add_argument("--resume", action="store_true",
                   help="continue the run of the store: run only the jobs it lacks")
    p.add_argument("--fresh", action="store_true",
                   help="start the store afresh (removes it) when it holds jobs")
    p.add_argument("--report-only", metavar="STORE",
                   help="only write the reports (tables, BD-rates, intervals, plots) of "
                        "everything the results store holds, also of a partial run, into "
                        "--out; runs nothing")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples of the confidence intervals (default 1000; "
                        "0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("-o", "--out", default="out/eval",
                   help="output folder (default out/eval, which git ignores; the committed "
                        "results are regenerated with -o docs/eval)")
    p.add_argument("--no-progress", action="store_true", help="no progress line")
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
    if args.workers < 1:
        raise ValueError(f"--workers shall be at least 1, got {args.workers}")
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap shall be at least 0, got {args.bootstrap}")
    images = args.list if args.list else args.images
    return EvalOptions(networks=tuple(args.networks) if args.networks else None,
                       splits=splits or None, qps=tuple(args.qps), configs=tuple(args.configs),
                       detection_configs=det, images=images, labels=args.labels,
                       detection_images=args.detection_images, workers=args.workers,
                       progress=not args.no_progress, named_models=tuple(args.model),
                       engine=args.engine, scheduler=args.scheduler,
                       dashboard=not args.no_dashboard, resume=args.resume,
                       bootstrap=args.bootstrap, seed=args.seed)


def _store_path(args) -> Path:
    return Path(args.store) if args.store else Path(args.out) / STORE_NAME


def _remove_store(path: Path):
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.is_file():
            p.unlink()


def _log(text: str):
    print(text, file=sys.stderr, flush=True)


def run(args, command: str | None = None) -> int:
    """Handler of ``refcodec eval``."""
    try:
        from .. import evaluation
        from ..errors import RefcodecError
        from ..models import AssetMissing
    except ImportError as exc:
        print(f"refcodec: error: the evaluation needs torch and the evaluation assets "
              f"({exc}); pip install -e '.[torch]' and run tools/install_eval_assets.sh",
              file=sys.stderr)
        return EXIT_USAGE
    command = command or "refcodec eval " + " ".join(map(shlex.quote, sys.argv[2:]))
    try:
        if args.render:
            files = evaluation.render(args.render, args.out)
            print("wrote " + ", ".join(f"{args.out}/{f}" for f in files))
            return EXIT_OK
        if args.report_only:
            files = evaluation.render_store(args.report_only, args.out,
                                            bootstrap=args.bootstrap, seed=args.seed)
            print("wrote " + ", ".join(f"{args.out}/{f}" for f in files))
            return EXIT_OK
    except (RefcodecError, OSError, ValueError) as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store = _store_path(args)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        opts = options_from_args(args)
        for c in opts.configs:
            evaluation.parse_config(c)
        if args.fresh and not args.resume:
            _remove_store(store)
        opts.store = store
        opts.command = command
        opts.log = _log
        t0 = time.time()

        def on_term(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGTERM, on_term)
        try:
            result = evaluation.evaluate(opts)
        finally:
            signal.signal(signal.SIGTERM, previous)
        files = evaluation.write_reports(result, args.out, command)
    except KeyboardInterrupt:
        n = _stored(store)
        print(f"refcodec: interrupted: {n} finished jobs are in {store}; run the same "
              f"command with --resume to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except AssetMissing as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except evaluation.EvaluationError as exc:
        hint = " (or --fresh to start over)" if "resume it" in str(exc) else ""
        print(f"refcodec: error: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, KeyError) as exc:
        print(f"refcodec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if result["summary"]:
        print(evaluation.table3(result["summary"], qps=opts.qps))
    n_skip = len(result.get("skipped") or [])
    print(f"\n{len(result['jobs'])} jobs in {time.time() - t0:.0f} s"
          + (f"; {n_skip} unreadable inputs skipped (listed in the report)" if n_skip else "")
          + f"; store {store}; wrote " + ", ".join(f"{args.out}/{f}" for f in files))
    return EXIT_OK


def _stored(store: Path) -> int:
    try:
        from ..evaluation import ResultStore
        with ResultStore(store, create=False) as s:
            return s.count()
    except Exception:              # the count is only for the message
        return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand to a subparsers object of argparse."""
    p = subparsers.add_parser(
        "eval", help="evaluate coding on real networks (MobileNetV2, CRAFT, your own) and "
        "real images on Dask: rate, fidelity with intervals, BD-rate, plots (needs torch and "
        "tools/install_eval_assets.sh)")
    add_arguments(p)
    p.set_defaults(func=run)
    return p
