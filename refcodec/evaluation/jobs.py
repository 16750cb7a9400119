"""Evaluation jobs (network, input, split, configuration, QP): run in worker processes, one
torch thread each; the results depend on the job only, not on the worker count."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .. import metrics
from .configs import encoder_config
from .images import EvalImage, image_set, images_for


@dataclasses.dataclass(frozen=True)
class Job:
    network: str
    image_index: int
    n_images: int
    split: str
    config: str
    fields: tuple          # sorted (key, value) pairs of the configuration
    qp: int


_STATE: dict = {}


def _worker_init(threads: int = 1):
    import torch
    torch.set_num_threads(threads)
    _STATE.pop("pristine", None)


def _network(name):
    from .. import models
    nets = _STATE.setdefault("networks", {})
    if name not in nets:
        nets[name] = models.load_network(name)
    return nets[name]


def _image(network: str, index: int, n: int) -> EvalImage:
    sets = _STATE.setdefault("images", {})
    key = (network == "craft", n)
    if key not in sets:
        sets[key] = images_for(network, n)
    return sets[key][index]


def _pristine(job: Job):
    """Head feature and pristine tail outputs of (network, image, split), cached (last)."""
    import torch
    key = (job.network, job.image_index, job.n_images, job.split)
    cached = _STATE.get("pristine")
    if cached and cached[0] == key:
        return cached[1]
    net = _network(job.network)
    split = net.split(job.split)
    x = net.preprocess(_image(job.network, job.image_index, job.n_images).image)
    with torch.no_grad():
        feature = split.head(x)
        outputs = split.tail(feature)
    value = (net, split, feature, outputs)
    _STATE["pristine"] = (key, value)
    return value


def _top_k(logits: np.ndarray, k: int) -> np.ndarray:
    return metrics.top_k_classes(logits[None], k)[0]


def run_job(job: Job) -> dict:
    """Code the feature of one job and evaluate the tail on it."""
    import torch
    from ..models import code_feature
    net, split, feature, pristine = _pristine(job)
    coded = code_feature(feature, encoder_config(dict(job.fields), job.qp), detailed=True)
    with torch.no_grad():
        rec = split.tail(coded.feature)
    row = {"network": job.network, "split": job.split, "config": job.config, "qp": job.qp,
           "image_index": job.image_index,
           "image": _image(job.network, job.image_index, job.n_images).key,
           "elements": coded.num_elements, "bytes": len(coded.stream),
           "encode_s": coded.encode_seconds, "decode_s": coded.decode_seconds}
    if net.task == "classification":
        lp = pristine["logits"][0].double().numpy()
        lr = rec["logits"][0].double().numpy()
        row["top1_pristine"] = int(_top_k(lp, 1)[0])
        row["top1_reconstructed"] = int(_top_k(lr, 1)[0])
        row["top5_agreement"] = len(set(_top_k(lp, 5)) & set(_top_k(lr, 5))) / 5
        row["embedding_pristine"] = pristine["embedding"][0].double().numpy()
        row["embedding_reconstructed"] = rec["embedding"][0].double().numpy()
    else:
        dp = net.detections(pristine["maps"])
        dr = net.detections(rec["maps"])
        row["detections_pristine"] = int(len(dp[1]))
        row["detections_reconstructed"] = int(len(dr[1]))
        row["detection_fidelity_image"] = metrics.image_detection_fidelity(dp, dr)
    return row


def reference_embeddings(n: int) -> np.ndarray:
    """Pristine 1280-d MobileNetV2 embeddings of the n inputs of the image set (N x 1280)."""
    import torch
    net = _network("mobilenet_v2")
    rows = []
    with torch.no_grad():
        for im in image_set(n):
            rows.append(net.model.embed(net.preprocess(im.image))[0].double().numpy())
    return np.stack(rows)


def _run_jobs(jobs: Sequence[Job], workers: int, progress: bool):
    """Run jobs; results in job order whatever the worker count.  Jobs that share
    (network, input, split) go to one worker as a group, which computes the head once."""
    results: list = [None] * len(jobs)
    groups = defaultdict(list)
    for i, job in enumerate(jobs):
        groups[(job.network, job.image_index, job.split)].append((i, job))
    # the detector's groups are the slowest: start them first (balances the workers)
    groups = sorted(groups.values(), key=lambda g: g[0][1].network != "craft")
    bar = _progress(len(jobs), progress)
    if workers <= 1:
        _worker_init(1)
        for g in groups:
            for i, row in _job_group(g):
                results[i] = row
            bar.update(len(g))
    else:
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init, initargs=(1,)) as pool:
            for done in pool.imap_unordered(_job_group, groups, chunksize=1):
                for i, row in done:
                    results[i] = row
                bar.update(len(done))
    bar.close()
    return results


def _job_group(group):
    return [(i, run_job(job)) for i, job in group]


class _Counter:
    def __init__(self, total):
        self.total, self.n, self.t0, self.last = total, 0, time.time(), 0.0

    def update(self, k):
        self.n += k
        now = time.time()
        if now - self.last > 2 or self.n == self.total:
            self.last = now
            sys.stderr.write(f"\r{self.n}/{self.total} jobs, {now - self.t0:.0f} s")
            sys.stderr.flush()

    def close(self):
        sys.stderr.write("\n")


class _Silent:
    def update(self, k):
        pass

    def close(self):
        pass


def _progress(total, enabled):
    if not enabled:
        return _Silent()
    try:
        from tqdm import tqdm
        return tqdm(total=total, unit="job", file=sys.stderr, dynamic_ncols=True)
    except ImportError:
        return _Counter(total)
