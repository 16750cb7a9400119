"""Running the jobs: on Dask distributed (a LocalCluster here, or the cluster at a
scheduler address), or in a plain loop in this process.

Dask: one task per (network, image, split) computes the head and the pristine outputs
(``jobs.pristine``) and one task per job codes the feature and measures it
(``jobs.run_job``), depending on it, so a head is computed once and Dask runs the jobs
where the feature is.  A worker plugin sets torch to one thread in every worker; built-in
networks are loaded once per worker process (``jobs._network``), a network given in Python
is scattered to every worker once and kept there.  Task keys are derived from the job keys,
so resubmitting a job runs it once.  A worker that dies is replaced by its nanny and its
tasks run again elsewhere (Dask's ``allowed-failures``).  Results come back to the client
as they finish (``as_completed``); each is written to the results store at once.

LocalCluster: ``processes=True``, ``threads_per_worker=1``, ``workers`` worker processes,
the dashboard on a free port (its link is printed) or off.  With ``scheduler`` the client
connects to that address instead and starts nothing; the workers there need refcodec, torch
and the evaluation assets installed.

Serial (``engine="serial"``): the same task functions in this process, group by group.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from . import jobs as _jobs
from .jobs import Failed, Job, Skipped

ENGINES = ("auto", "dask", "serial")


def groups_of(job_list: Sequence[Job]) -> list[list[Job]]:
    """Jobs sharing (network, image, split), in first-appearance order; the detector's
    groups (the slowest) first, which balances the workers."""
    groups = defaultdict(list)
    for job in job_list:
        groups[(job.network, job.image.key, job.split)].append(job)
    return sorted(groups.values(), key=lambda g: g[0].network != "craft")


class Progress:
    """One line on stderr: jobs done of the total, jobs per second, ETA (rewritten in place
    on a terminal, a new line every 10 s otherwise)."""

    def __init__(self, total: int, done: int = 0, enabled: bool = True, stream=None):
        self.total, self.done, self.enabled = total, done, enabled
        self.start_done = done
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self.last = -math.inf
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def restart(self):
        """Measure the rate from now on (after the cluster has started)."""
        self.t0 = time.monotonic()

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        new = self.done - self.start_done
        rate = new / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = f"{_clock(left / rate)}" if rate > 0 else "?"
        return (f"{self.done}/{self.total} jobs ({100 * self.done / max(1, self.total):.0f} %), "
                f"{rate:.2f} jobs/s, elapsed {_clock(elapsed)}, ETA {eta}")

    def update(self, k: int = 1):
        self.done += k
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= (0.5 if self.tty else 10.0) or self.done >= self.total:
            self.last = now
            self.stream.write(("\r" if self.tty else "") + self.line() +
                              ("" if self.tty else "\n"))
            self.stream.flush()

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"


class _WorkerSetup:
    """Dask worker plugin: torch with one thread in every worker (and workers that join)."""

    name = "refcodec-eval-setup"
    idempotent = True

    def setup(self, worker):
        _jobs.worker_setup(1)

    def teardown(self, worker):
        pass

    def transition(self, key, start, finish, **kwargs):
        pass

    def release_key(self, key, state, cause, reason, report):
        pass


def _plugin():
    from distributed.diagnostics.plugin import WorkerPlugin

    class WorkerSetup(_WorkerSetup, WorkerPlugin):
        pass
    return WorkerSetup()


def connect(workers: int = 2, scheduler: str | None = None, dashboard: bool = True,
            log=None):
    """(client, cluster or None): a LocalCluster of ``workers`` processes, or a client of
    the scheduler at ``scheduler``."""
    import logging
    from distributed import Client, LocalCluster
    log = log or (lambda s: None)
    if scheduler:
        client = Client(scheduler, timeout="30s")
        cluster = None
    else:
        if workers < 1:
            raise ValueError(f"--workers shall be at least 1, got {workers}")
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0" if dashboard else None,
                               silence_logs=logging.ERROR,
                               worker_dashboard_address=None)
        client = Client(cluster)
    client.register_plugin(_plugin())
    n = len(client.scheduler_info(n_workers=-1).get("workers", {})) if scheduler else workers
    where = f"scheduler {scheduler}" if scheduler else f"LocalCluster of {n} worker processes"
    link = client.dashboard_link if dashboard or scheduler else None
    log(f"dask: {where}" + (f", dashboard {link}" if link else ""))
    return client, cluster


def _token(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def run(job_list: Sequence[Job], payloads: dict, input_kinds: dict,
        on_result: Callable, *, engine: str = "auto", workers: int = 2,
        scheduler: str | None = None, dashboard: bool = True, progress: Progress | None = None,
        log=None, client=None) -> dict:
    """Run every job; ``on_result(job, result)`` in this process as each finishes (result:
    a row, Skipped or Failed).  Returns {"engine", "workers", "dashboard"}."""
    progress = progress or Progress(len(job_list), enabled=False)
    if engine not in ENGINES:
        raise ValueError(f"engine shall be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        engine = "dask" if (scheduler or client is not None or workers > 1) else "serial"
    groups = groups_of(job_list)
    if engine == "serial":
        _jobs.worker_setup(1)
        for g in groups:
            first = g[0]
            payload = payloads[first.network]
            head = _jobs.pristine(payload, input_kinds[first.network], first.network,
                                  first.image, first.split)
            for job in g:
                on_result(job, _jobs.run_job(payload, head, job))
                progress.update()
        progress.close()
        return {"engine": "serial", "workers": 1, "dashboard": None}
    return _run_dask(groups, payloads, input_kinds, on_result, workers, scheduler, dashboard,
                     progress, log, client)


def _run_dask(groups, payloads, input_kinds, on_result, workers, scheduler, dashboard,
              progress, log, client):
    try:
        from distributed import as_completed
    except ImportError:
        from .sources import EvaluationError
        raise EvaluationError("the Dask engine needs dask[distributed] (pip install -e "
                              "'.[eval]'); or run in this process with --engine serial") from None
    own = client is None
    cluster = None
    if own:
        client, cluster = connect(workers, scheduler, dashboard, log)
    else:
        client.register_plugin(_plugin())
    info = {"engine": "dask", "workers": len(client.scheduler_info(n_workers=-1)["workers"]),
            "dashboard": client.dashboard_link if (dashboard or scheduler) else None}
    progress.restart()
    try:
        remote = {}
        for name, payload in payloads.items():
            remote[name] = payload if isinstance(payload, str) else \
                client.scatter(payload, broadcast=True, hash=False)
        futures = {}
        for g in groups:
            first = g[0]
            head_key = "refcodec-pristine-" + _token(
                f"{first.network}|{first.image.key}|{first.split}")
            head = client.submit(_jobs.pristine, remote[first.network],
                                 input_kinds[first.network], first.network, first.image,
                                 first.split, key=head_key)
            for job in g:
                fut = client.submit(_jobs.run_job, remote[first.network], head, job,
                                    key="refcodec-job-" + _token(job.key))
                futures[fut.key] = (fut, job)
            del head
        for fut in as_completed([f for f, _ in futures.values()]):
            _, job = futures.pop(fut.key)
            result = fut.result()
            fut.release()
            on_result(job, result)
            progress.update()
        progress.close()
        return info
    finally:
        for fut, _ in futures.values() if "futures" in locals() else ():
            fut.cancel()
        if own:
            client.close()
            if cluster is not None:
                cluster.close()


__all__ = ["ENGINES", "Progress", "connect", "groups_of", "run", "Skipped", "Failed"]
