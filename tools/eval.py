#!/usr/bin/env python3
"""Evaluate VFC feature coding on real networks and real images (AVS VFC test conditions).

Same code as ``refcodec eval`` (refcodec/cli/eval.py, refcodec/evaluation/).  Needs torch
and the offline assets: ``bash tools/install_eval_assets.sh``.  Writes out/eval/ by default
(git ignores out/; the committed results in docs/eval/ are regenerated with ``-o docs/eval``):
README.md (Table 3 layout, all results, BD-rates, Fig. 5 comparison), summary.csv, jobs.csv,
results.json and PNG plots.

    python tools/eval.py -o docs/eval         # the full run (about 25 minutes on 2 cores)
    python tools/eval.py --images 4 --detection-images 2 --configs baseline

At scale (docs/eval/scale.md): the jobs run on Dask (a LocalCluster of -j worker processes,
or --scheduler ADDRESS), each finished job goes into the results store (OUT/store.sqlite or
--store), which --resume continues and --report-only STORE renders:

    python tools/eval.py --networks mobilenet_v2 --splits mobilenet_v2:conv3,conv5 \
        --configs baseline uniform --images 512 -o out/eval-scale
    python tools/eval.py --images /data/imagenet/val --model resnet50:resnet50.pth \
        --splits resnet50:layer2,layer3 --configs baseline -o out/resnet50 --resume
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refcodec.cli import eval as eval_command  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    eval_command.add_arguments(ap)
    args = ap.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    command = "python tools/eval.py" + ("".join(" " + shlex.quote(a) for a in argv))
    return eval_command.run(args, command)


if __name__ == "__main__":
    sys.exit(main())
