#!/usr/bin/env python3
"""Throughput of the evaluation engine: jobs per second with 1 and 2 Dask workers, and the
engine's overhead against a plain loop of the same jobs (issue 16).

The job set: the first ``--images`` bundled inputs, MobileNetV2 split ``--split``, the
baseline configuration, QPs 12 22 32 42.  Measured in one process, each mode ``--repeat``
times, reported as medians (wall time, jobs/s) and ratios against the plain loop:

  plain loop    the task functions (``jobs.pristine`` once per input, ``jobs.run_job``
                per job) called in this process, nothing stored: the work itself
  serial        ``evaluate(engine="serial")``: the same loop plus the results store (one
                SQLite transaction per job) and the summary
  dask 1 / 2    ``evaluate(engine="dask")`` on a LocalCluster of 1 or 2 worker processes
                (started once per worker count and warmed up by one run: its start-up
                and the workers' network loading are reported apart)

Every mode computes the same rows (checked).  Bootstrap intervals are off (``bootstrap=0``)
so that the summary costs the same in every mode.  Heavy: run it as
``flock /tmp/refcodec-heavy.lock nice -n 5 python tools/bench_eval.py``.

    python tools/bench_eval.py                     # 12 inputs x 4 QPs = 48 jobs, 3 repeats
    python tools/bench_eval.py --json docs/bench/eval.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("encode_s", "decode_s")
             and not k.startswith("embedding")} for r in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--split", default="conv4")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    import torch
    from distributed import Client, LocalCluster

    from refcodec import evaluation as ev
    from refcodec.evaluation import jobs as J
    torch.set_num_threads(1)
    opts = dict(networks=("mobilenet_v2",), splits={"mobilenet_v2": [args.split]},
                qps=(12, 22, 32, 42), configs=("baseline",), images=args.images,
                progress=False, bootstrap=0)
    specs, _, _, job_list = ev.plan(ev.EvalOptions(**opts))
    n = len(job_list)
    groups = ev.engine.groups_of(job_list)
    out = {"jobs": n, "images": args.images, "split": args.split, "repeat": args.repeat,
           "modes": {}}

    def plain():
        rows = []
        for g in groups:
            head = J.pristine("mobilenet_v2", "imagenet", g[0].network, g[0].image, g[0].split)
            rows += [J.run_job("mobilenet_v2", head, job) for job in g]
        return rows

    def timed(fn):
        t = time.perf_counter()
        res = fn()
        return time.perf_counter() - t, res

    plain()                                             # warm-up: load the network
    times, ref = [], None
    for _ in range(args.repeat):
        t, rows = timed(plain)
        times.append(t)
        ref = _strip(sorted(rows, key=lambda r: (r["qp"], r["image_index"])))
    out["modes"]["plain loop"] = {"times_s": times}

    def via_evaluate(**kw):
        with tempfile.TemporaryDirectory() as d:
            r = ev.evaluate(store=Path(d) / "s.sqlite", **opts, **kw)
        return _strip(sorted(r["jobs"], key=lambda r: (r["qp"], r["image_index"])))

    times = []
    for _ in range(args.repeat):
        t, rows = timed(lambda: via_evaluate(engine="serial"))
        assert rows == ref, "serial engine rows differ from the plain loop"
        times.append(t)
    out["modes"]["serial"] = {"times_s": times}

    for workers in (1, 2):
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        startup = time.perf_counter() - t0
        try:
            kw = dict(engine="dask", scheduler=cluster.scheduler_address, dashboard=False)
            warm, rows = timed(lambda kw=kw: via_evaluate(**kw))          # workers load the net
            assert rows == ref, f"dask ({workers}) rows differ from the plain loop"
            times = []
            for _ in range(args.repeat):
                t, rows = timed(lambda kw=kw: via_evaluate(**kw))
                assert rows == ref, f"dask ({workers}) rows differ from the plain loop"
                times.append(t)
        finally:
            client.close()
            cluster.close()
        out["modes"][f"dask, {workers} worker" + ("s" if workers > 1 else "")] = {
            "times_s": times, "cluster_start_s": startup, "first_run_s": warm}

    base = statistics.median(out["modes"]["plain loop"]["times_s"])
    print(f"{n} jobs (MobileNetV2 {args.split}, {args.images} bundled inputs x 4 QPs, "
          f"baseline), median of {args.repeat}; ratio = time / plain loop time")
    print(f"{'mode':<18} {'median s':>9} {'jobs/s':>8} {'ratio':>7}  notes")
    for mode, m in out["modes"].items():
        med = statistics.median(m["times_s"])
        m.update(median_s=med, jobs_per_s=n / med, ratio_to_plain=med / base)
        note = ""
        if "cluster_start_s" in m:
            note = (f"cluster start {m['cluster_start_s']:.1f} s, first run (workers load "
                    f"the network) {m['first_run_s']:.1f} s")
        print(f"{mode:<18} {med:9.2f} {n / med:8.2f} {med / base:7.2f}  {note}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
