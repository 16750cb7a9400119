"""The evaluation run: EvalOptions, ``evaluate`` (plan the jobs, run them on the engine
into the results store, summarise) and ``result_from_store`` (the same summary from what a
store holds, also for a partial or killed run).

A run's jobs are every (network, input, split, configuration, QP).  The results store
(``store``) receives each finished job at once; a run on a store that already holds jobs
needs ``resume=True`` (``--resume``) and then runs only the jobs the store lacks.  The
result is computed from the store's rows of this run's jobs, so an interrupted and resumed
run gives the same result as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import engine as _engine
from .configs import BASELINE, QPS, parse_config
from .jobs import Failed, Job, Skipped
from .networks import NetworkSpec, builtin_network, named_network, user_network
from .sources import EvaluationError, resolve_images
from .stats import DEFAULT_BOOTSTRAP, DEFAULT_SEED, bd_rate_intervals, point_statistics
from .store import ResultStore
from .summary import aggregate, bd_rates, fig5

BUILTIN_NETWORKS = ("mobilenet_v2", "craft")


@dataclasses.dataclass
class EvalOptions:
    """Options of an evaluation (``evaluate``); the CLI flags of ``refcodec eval`` map onto
    them one to one.

    networks      built-in networks (None: both, unless ``model`` or ``named_models`` is
                  given, then none)
    splits        network -> split names (None: all of a built-in network)
    images        the inputs of the classification networks: an int (the first n bundled
                  inputs), a folder, a list file, or a sequence of paths / arrays
    detection_images  the same for the detector
    labels        a labels file for ``images`` (see ``sources``)
    model, split, task, preprocess, detections, model_name
                  a torch module given in Python and its split point(s) (``networks``)
    named_models  ``[NAME=]ARCH:WEIGHTS`` items (``--model``)
    engine        ``auto`` (Dask when workers > 1 or a scheduler is given, else serial),
                  ``dask`` or ``serial``
    workers, scheduler, dashboard   the Dask LocalCluster, or an existing scheduler
    store, resume the results store (None: a temporary one, removed afterwards)
    bootstrap, seed   resamples and seed of the confidence intervals
    """
    networks: tuple | None = None
    splits: dict | None = None          # network -> list of split names (None: all)
    qps: tuple = QPS
    configs: tuple = (BASELINE,)        # specs for parse_config
    detection_configs: tuple | None = (BASELINE,)   # configs for craft (None: all)
    images: object = 36
    detection_images: object = 6
    labels: str | None = None
    workers: int = 2
    progress: bool = True
    model: object = None
    split: object = None
    task: str = "classification"
    preprocess: Callable | None = None
    detections: Callable | None = None
    model_name: str = "model"
    named_models: tuple = ()
    engine: str = "auto"
    scheduler: str | None = None
    dashboard: bool = True
    store: str | os.PathLike | None = None
    resume: bool = False
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = DEFAULT_SEED
    command: str = ""
    log: Callable | None = None          # one-line messages (dashboard link, resume counts)
    on_result: Callable | None = None    # called (job, result) after each job is stored


def _network_specs(opts: EvalOptions) -> list[NetworkSpec]:
    splits = opts.splits or {}
    networks = opts.networks
    if networks is None:
        networks = () if (opts.model is not None or opts.named_models) else BUILTIN_NETWORKS
    specs = []
    for n in networks:
        if n not in BUILTIN_NETWORKS:
            raise EvaluationError(f"unknown network {n!r}; built-in: "
                                  f"{', '.join(BUILTIN_NETWORKS)} (other networks: --model "
                                  f"ARCH:WEIGHTS or evaluate(model=...))")
        specs.append(builtin_network(n, splits.get(n)))
    for text in opts.named_models:
        name = text.partition("=")[0] if "=" in text.split(":")[0] else text.split(":")[0]
        specs.append(named_network(text, splits.get(name) or []))
    if opts.model is not None:
        if opts.split is None:
            raise EvaluationError("model given without split (a submodule name, a list of "
                                  "them, or SplitModel objects)")
        specs.append(user_network(opts.model, opts.split, name=opts.model_name,
                                  task=opts.task, preprocess=opts.preprocess,
                                  detections=opts.detections))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise EvaluationError(f"two networks are named alike: {', '.join(names)}")
    if not specs:
        raise EvaluationError("no network to evaluate")
    return specs


def plan(opts: EvalOptions):
    """(network specs, configurations, image sets, jobs) of a run, nothing computed."""
    configs = dict(parse_config(c) for c in opts.configs)
    if BASELINE not in configs:
        configs = {BASELINE: {}, **configs}
    specs = _network_specs(opts)
    image_sets, job_list = {}, []
    for spec in specs:
        detector = spec.task == "detection"
        refs = resolve_images(opts.detection_images if detector else opts.images,
                              spec.name if spec.builtin else "user",
                              None if detector else opts.labels)
        image_sets[spec.name] = refs
        cfgs = configs if spec.name != "craft" or opts.detection_configs is None else {
            k: v for k, v in configs.items() if k in opts.detection_configs}
        for ref in refs:
            for s in spec.splits:
                for name, fields in cfgs.items():
                    for qp in opts.qps:
                        job_list.append(Job(spec.name, ref, s, name,
                                            tuple(sorted(fields.items())), int(qp)))
    return specs, configs, image_sets, job_list


def _options_record(opts: EvalOptions, specs, configs, image_sets) -> dict:
    return {"networks": [s.name for s in specs], "qps": list(opts.qps),
            "configs": configs,
            "detection_configs": list(opts.detection_configs) if opts.detection_configs
            else list(configs),
            "images": {k: len(v) for k, v in image_sets.items()},
            "image_source": {"images": opts.images if isinstance(opts.images, (int, str))
                             else str(type(opts.images).__name__),
                             "detection_images": opts.detection_images
                             if isinstance(opts.detection_images, (int, str)) else "given"},
            "workers": opts.workers, "engine": opts.engine, "scheduler": opts.scheduler,
            "bootstrap": opts.bootstrap, "seed": opts.seed}


def evaluate(opts: EvalOptions | None = None, /, **kwargs) -> dict:
    """Run the evaluation: a dict with "meta", "jobs", "summary", "bd_rates", "fig5",
    "statistics" (bootstrap intervals per point and of the BD-rates), "skipped" and
    "failed".  ``evaluate(EvalOptions(...))`` or ``evaluate(model=..., split=...,
    images=..., ...)`` with the fields of EvalOptions as keywords."""
    import torch
    if opts is None:
        opts = EvalOptions(**kwargs)
    elif kwargs:
        opts = dataclasses.replace(opts, **kwargs)
    t0 = time.time()
    torch.set_num_threads(1)
    log = opts.log or (lambda s: None)
    specs, configs, image_sets, job_list = plan(opts)
    tmp = None
    if opts.store is None:
        tmp = tempfile.mkdtemp(prefix="refcodec-eval-")
        store_path = Path(tmp) / "store.sqlite"
    else:
        store_path = Path(opts.store)
    store = ResultStore(store_path)
    try:
        for spec in specs:
            store.check_network(spec.name, spec.fingerprint, {
                "description": spec.description, "task": spec.task, "splits": spec.splits,
                "input_kind": spec.input_kind, "builtin": spec.builtin})
        for name, fields in configs.items():
            store.check_config(name, fields)
        done = store.done_keys()
        if done and not opts.resume:
            raise EvaluationError(f"the results store holds {len(done)} jobs: resume it "
                                  f"(--resume) or give another store", path=str(store_path))
        todo = [j for j in job_list if j.key not in done]
        if opts.resume:
            log(f"resume: {len(job_list) - len(todo)} of {len(job_list)} jobs already in "
                f"{store_path}, {len(todo)} to run")
        run_id = store.begin_run(_options_record(opts, specs, configs, image_sets),
                                 len(job_list), opts.command, opts.engine)
        skipped_seen = set()

        def on_result(job, result):
            if isinstance(result, Skipped):
                if (result.network, result.image) not in skipped_seen:
                    skipped_seen.add((result.network, result.image))
                    store.add_skipped(result.network, result.image, result.reason, run_id)
                    log(f"skipped {result.image}: {result.reason}")
            elif isinstance(result, Failed):
                store.add_failed(result.key, result.reason, run_id)
            else:
                store.add(job.key, result, run_id)
            if opts.on_result is not None:
                opts.on_result(job, result)

        progress = _engine.Progress(len(job_list), len(job_list) - len(todo), opts.progress)
        info = _engine.run(todo, {s.name: s.payload for s in specs},
                           {s.name: s.input_kind for s in specs}, on_result,
                           engine=opts.engine, workers=opts.workers,
                           scheduler=opts.scheduler, dashboard=opts.dashboard,
                           progress=progress, log=log)
        store.end_run(run_id)
        keys = {j.key for j in job_list}
        rows = [r for r in store.rows() if _key(r) in keys]
        result = build_result(rows, store, bootstrap=opts.bootstrap, seed=opts.seed,
                              networks={s.name: s for s in specs}, planned=len(job_list))
        m = result["meta"]
        m.update({"workers": info["workers"], "engine": info["engine"],
                  "dashboard": info["dashboard"], "wall_time_s": time.time() - t0,
                  "store": None if tmp else str(store_path), "command": opts.command})
        return result
    finally:
        store.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _key(row: dict) -> str:
    from .store import job_key
    return job_key(row["network"], row["split"], row["config"], row["qp"], row["image"])


def build_result(rows: list[dict], store: ResultStore, *, bootstrap: int = DEFAULT_BOOTSTRAP,
                 seed: int = DEFAULT_SEED, networks: dict | None = None,
                 planned: int | None = None) -> dict:
    """The result dict of ``evaluate`` from job rows (of a store)."""
    import torch
    stored_nets = store.networks()
    configs = store.configs()
    net_order = list(dict.fromkeys(r["network"] for r in rows)) or list(stored_nets)
    if networks:
        net_order = [n for n in networks if any(r["network"] == n for r in rows)] or \
            list(networks)
    order = {n: i for i, n in enumerate(net_order)}
    split_order = {}
    for n in net_order:
        info = stored_nets.get(n, {})
        for i, s in enumerate(info.get("splits", {})):
            split_order[(n, s)] = i
    rows = sorted(rows, key=lambda r: (order.get(r["network"], 99),
                                       split_order.get((r["network"], r["split"]), 99),
                                       list(configs).index(r["config"])
                                       if r["config"] in configs else 99,
                                       r["qp"], r["image_index"], r["image"]))
    images = {}
    for r in rows:
        images.setdefault(r["network"], {})[r["image_index"], r["image"]] = None
    present = {(r["network"], r["image"]) for r in rows}
    skipped = [s for s in store.skipped() if (s["network"], s["image"]) not in present]
    runs = store.runs()
    last = runs[-1]["options"] if runs else {}
    qps = sorted({r["qp"] for r in rows}) or last.get("qps", list(QPS))
    used_configs = {c: configs[c] for c in dict.fromkeys(r["config"] for r in rows)
                    if c in configs}
    summary = aggregate(rows, None)
    meta = {
        "networks": {n: stored_nets.get(n, {}).get("description", n) for n in net_order},
        "splits": {n: {s: d for s, d in stored_nets.get(n, {}).get("splits", {}).items()
                       if any(r["network"] == n and r["split"] == s for r in rows)}
                   for n in net_order},
        "qps": qps, "configs": used_configs or configs,
        "detection_configs": last.get("detection_configs", [BASELINE]),
        "images": {n: [k for _, k in sorted(v)] for n, v in images.items()},
        "jobs": len(rows), "planned": planned if planned is not None else
        max((r["planned"] for r in runs), default=len(rows)),
        "workers": last.get("workers"), "wall_time_s": None,
        "run_time_s": sum((r["finished"] or r["started"]) - r["started"] for r in runs),
        "runs": len(runs), "python": platform.python_version(), "torch": torch.__version__,
        "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "bootstrap": bootstrap, "seed": seed,
    }
    return {
        "meta": meta,
        "jobs": [{k: v for k, v in r.items() if not k.startswith("embedding")} for r in rows],
        "summary": summary,
        "bd_rates": bd_rates(summary),
        "fig5": fig5(rows),
        "statistics": {"points": point_statistics(rows, bootstrap=bootstrap, seed=seed),
                       "bd_rates": bd_rate_intervals(rows, bootstrap=bootstrap, seed=seed)},
        "skipped": skipped,
        "failed": store.failed(),
    }


def result_from_store(path, *, bootstrap: int = DEFAULT_BOOTSTRAP,
                      seed: int = DEFAULT_SEED) -> dict:
    """The result of everything a results store holds (a finished, partial or killed run;
    several runs on one store are pooled: a point is summarised over the inputs it has)."""
    with ResultStore(path, create=False) as store:
        result = build_result(store.rows(), store, bootstrap=bootstrap, seed=seed)
        result["meta"]["store"] = str(path)
        runs = store.runs()
        result["meta"]["command"] = runs[-1]["command"] if runs else ""
        result["meta"]["wall_time_s"] = result["meta"]["run_time_s"]
        result["meta"]["engine"] = runs[-1]["engine"] if runs else None
    return result
