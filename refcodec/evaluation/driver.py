"""The evaluation run: EvalOptions, and evaluate (jobs, summary, BD-rates, Fig. 5)."""

from __future__ import annotations

import dataclasses
import os
import platform
import time

from .configs import BASELINE, QPS, parse_config
from .images import images_for
from .jobs import Job, _network, _run_jobs, reference_embeddings
from .summary import aggregate, bd_rates, fig5


@dataclasses.dataclass
class EvalOptions:
    networks: tuple = ("mobilenet_v2", "craft")
    splits: dict | None = None          # network -> list of split names (None: all)
    qps: tuple = QPS
    configs: tuple = (BASELINE,)        # specs for parse_config
    detection_configs: tuple | None = (BASELINE,)   # configs for craft (None: all)
    images: int = 36
    detection_images: int = 6
    workers: int = 2
    progress: bool = True


def evaluate(opts: EvalOptions) -> dict:
    """Run the evaluation; a dict with "meta", "jobs", "summary", "bd_rates", "fig5"."""
    import torch
    from .. import models
    t0 = time.time()
    torch.set_num_threads(1)
    configs = dict(parse_config(c) for c in opts.configs)
    if BASELINE not in configs:
        configs = {BASELINE: {}, **configs}
    n_by_net = {"mobilenet_v2": opts.images, "craft": opts.detection_images}
    jobs = []
    split_docs = {}
    for network in opts.networks:
        net = _network(network)                   # fails early if the assets are missing
        splits = (opts.splits or {}).get(network) or list(net.splits)
        for s in splits:
            net.split(s)
        split_docs[network] = {s: net.splits[s] for s in splits}
        cfgs = configs if network != "craft" or opts.detection_configs is None else {
            k: v for k, v in configs.items() if k in opts.detection_configs}
        for i in range(n_by_net[network]):
            for s in splits:
                for name, fields in cfgs.items():
                    for qp in opts.qps:
                        jobs.append(Job(network, i, n_by_net[network], s, name,
                                        tuple(sorted(fields.items())), qp))
    images = {net: [im.key for im in images_for(net, n_by_net[net])] for net in opts.networks}
    references = reference_embeddings(opts.images) if "mobilenet_v2" in opts.networks \
        else None
    rows = _run_jobs(jobs, opts.workers, opts.progress)
    summary = aggregate(rows, references)
    result = {
        "meta": {
            "networks": {n: models.NETWORKS[n] for n in opts.networks},
            "splits": split_docs,
            "qps": list(opts.qps), "configs": configs,
            "detection_configs": list(opts.detection_configs) if opts.detection_configs
            else list(configs),
            "images": images, "workers": opts.workers, "jobs": len(jobs),
            "wall_time_s": None, "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
        },
        "jobs": [{k: v for k, v in r.items() if not k.startswith("embedding")} for r in rows],
        "summary": summary,
        "bd_rates": bd_rates(summary),
        "fig5": fig5(summary, opts.networks, n_by_net),
    }
    result["meta"]["wall_time_s"] = time.time() - t0
    return result
