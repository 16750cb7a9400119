"""Evaluation jobs (network, input, split, configuration, QP) and the two tasks that run
them, in a worker process or in the client: ``pristine`` (load the image, run the head and
the pristine tail, once per network, input and split) and ``run_job`` (code the feature at
one configuration and QP, run the tail on the reconstruction, measure).  A worker runs
torch with one thread and keeps each network it has loaded (module-level cache), so the
results depend on the job only, not on the engine or the worker count.

Measures of a job (its row; ``summary`` and ``stats`` aggregate them):

* all: ``elements`` (of every tensor crossing the cut), ``bytes`` (the whole VFC stream),
  ``encode_s``, ``decode_s``; ``input_raw_bytes``, ``input_jpeg75_bytes`` (the network
  input image, for the Fig. 5 comparison);
* classification: ``top1_pristine``, ``top1_reconstructed``, ``top5_agreement``,
  ``softmax_kl`` = KL(softmax(pristine logits) || softmax(reconstructed logits)) in nats,
  ``logit_mse`` = mean over classes of the squared logit difference (both in binary64
  from the float32 logits), ``label`` when the image has an integer label; with an
  ``embedding`` output (MobileNetV2) also both embeddings, for retrieval;
* detection: ``detections_pristine``, ``detections_reconstructed``,
  ``detection_fidelity_image`` (F_image of Annex C.4, Eq. 4 for one image);
* output (any other network): ``output_mse``, ``output_max_abs``, ``output_rel_l2``
  (||reconstructed - pristine|| / ||pristine||) over all output tensors.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np

from .. import metrics
from ..errors import RefcodecError
from .configs import encoder_config
from .images import EvalImage, image_set
from .sources import ImageRef, ImageUnreadable, load_image
from .store import job_key


@dataclasses.dataclass(frozen=True)
class Job:
    network: str
    image: ImageRef
    split: str
    config: str
    fields: tuple          # sorted (key, value) pairs of the configuration
    qp: int

    @property
    def key(self) -> str:
        return job_key(self.network, self.split, self.config, self.qp, self.image.key)

    @property
    def image_index(self) -> int:
        return self.image.index


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A task's result for an image that could not be read or preprocessed."""
    network: str
    image: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Failed:
    """A job whose coding refcodec refused (e.g. a constant feature for the log quantizer)."""
    key: str
    reason: str


_STATE: dict = {}


def worker_setup(threads: int = 1):
    import torch
    torch.set_num_threads(threads)


def _network(name):
    """A built-in network, loaded once per process."""
    from .. import models
    nets = _STATE.setdefault("networks", {})
    if name not in nets:
        nets[name] = models.load_network(name)
    return nets[name]


def _resolve(payload):
    return _network(payload) if isinstance(payload, str) else payload


def _split_model(net, split: str):
    cache = _STATE.setdefault("splits", {})
    entry = cache.get(id(net))
    if entry is None or entry[0] is not net:
        entry = cache[id(net)] = (net, {})
    if split not in entry[1]:
        entry[1][split] = net.split(split)
    return entry[1][split]


def input_image(kind: str, x) -> np.ndarray:
    """The network input (after resizing / cropping) as H x W x 3 uint8 RGB: ``kind``
    ``imagenet`` (ImageNet mean / std on 0..1) or ``craft`` (the same on 0..255)."""
    from ..models import IMAGENET_MEAN, IMAGENET_STD
    scale = 255.0 if kind == "craft" else 1.0
    mean = np.array(IMAGENET_MEAN).reshape(3, 1, 1) * scale
    std = np.array(IMAGENET_STD).reshape(3, 1, 1) * scale
    v = x[0].double().numpy() * std + mean
    if kind != "craft":
        v = v * 255.0
    return np.clip(np.rint(v), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def jpeg_size(image_uint8: np.ndarray, quality: int = 75) -> int:
    """Bytes of the image coded by Pillow's JPEG encoder (libjpeg; baseline, 4:2:0 chroma
    subsampling, Pillow's default quantization tables scaled to ``quality``)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image_uint8).save(buf, format="JPEG", quality=quality)
    return buf.tell()


def pristine(payload, input_kind, network: str, image: ImageRef, split: str):
    """Head feature and pristine tail outputs of (network, image, split), or Skipped."""
    import torch
    worker_setup(1)
    net = _resolve(payload)
    try:
        x = net.preprocess(load_image(image))
    except ImageUnreadable as exc:
        return Skipped(network, image.key, exc.message)
    except ValueError as exc:
        return Skipped(network, image.key, f"cannot preprocess the image: {exc}")
    sm = _split_model(net, split)
    with torch.no_grad():
        feature = sm.head(x)
        outputs = sm.tail(feature)
    out = {"feature": feature, "outputs": outputs, "input_raw_bytes": None,
           "input_jpeg75_bytes": None}
    if input_kind:
        u8 = input_image(input_kind, x)
        out["input_raw_bytes"], out["input_jpeg75_bytes"] = int(u8.size), jpeg_size(u8)
    return out


def _top_k(logits: np.ndarray, k: int) -> np.ndarray:
    return metrics.top_k_classes(logits[None], k)[0]


def _log_softmax(v: np.ndarray) -> np.ndarray:
    m = v.max()
    return v - (m + np.log(np.exp(v - m).sum()))


def _tensors(out) -> list:
    import torch
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _tensors(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    return []


def classification_measures(lp: np.ndarray, lr: np.ndarray) -> dict:
    """top-1, top-5 agreement, softmax KL and logit MSE of one image's two logit vectors
    (binary64)."""
    k = min(5, lp.size)
    sp, sr = _log_softmax(lp), _log_softmax(lr)
    return {"top1_pristine": int(_top_k(lp, 1)[0]), "top1_reconstructed": int(_top_k(lr, 1)[0]),
            "top5_agreement": len(set(_top_k(lp, k)) & set(_top_k(lr, k))) / k,
            "softmax_kl": float(max(0.0, np.sum(np.exp(sp) * (sp - sr)))),
            "logit_mse": float(np.mean((lp - lr) ** 2))}


def run_job(payload, head, job: Job):
    """Code the feature of one job and evaluate the tail on it: the job's row, or Skipped /
    Failed."""
    import torch
    from ..models import code_feature
    if isinstance(head, Skipped):
        return head
    worker_setup(1)
    net = _resolve(payload)
    sm = _split_model(net, job.split)
    try:
        coded = code_feature(head["feature"], encoder_config(dict(job.fields), job.qp),
                             detailed=True)
    except RefcodecError as exc:
        return Failed(job.key, str(exc))
    with torch.no_grad():
        rec = sm.tail(coded.feature)
    pristine_out = head["outputs"]
    row = {"network": job.network, "split": job.split, "config": job.config, "qp": job.qp,
           "image_index": job.image.index, "image": job.image.key,
           "elements": coded.num_elements, "bytes": len(coded.stream),
           "encode_s": coded.encode_seconds, "decode_s": coded.decode_seconds,
           "input_raw_bytes": head["input_raw_bytes"],
           "input_jpeg75_bytes": head["input_jpeg75_bytes"]}
    if net.task == "classification":
        logits_p = pristine_out["logits"] if isinstance(pristine_out, dict) else pristine_out
        logits_r = rec["logits"] if isinstance(rec, dict) else rec
        row.update(classification_measures(logits_p[0].double().numpy(),
                                           logits_r[0].double().numpy()))
        if isinstance(job.image.label, (int, np.integer)):
            row["label"] = int(job.image.label)
        if isinstance(pristine_out, dict) and "embedding" in pristine_out:
            row["embedding_pristine"] = pristine_out["embedding"][0].double().numpy()
            row["embedding_reconstructed"] = rec["embedding"][0].double().numpy()
    elif net.task == "detection":
        maps_p = pristine_out["maps"] if isinstance(pristine_out, dict) else pristine_out
        maps_r = rec["maps"] if isinstance(rec, dict) else rec
        dp, dr = net.detections(maps_p), net.detections(maps_r)
        dp, dr = metrics.as_detections(dp), metrics.as_detections(dr)
        row["detections_pristine"] = int(len(dp))
        row["detections_reconstructed"] = int(len(dr))
        row["detection_fidelity_image"] = metrics.image_detection_fidelity(dp, dr)
    else:
        p = np.concatenate([t.detach().double().reshape(-1).numpy()
                            for t in _tensors(pristine_out)])
        r = np.concatenate([t.detach().double().reshape(-1).numpy() for t in _tensors(rec)])
        d = r - p
        norm = float(np.linalg.norm(p))
        row["output_mse"] = float(np.mean(d ** 2))
        row["output_max_abs"] = float(np.max(np.abs(d)))
        row["output_rel_l2"] = float(np.linalg.norm(d) / norm) if norm > 0 else None
    return row


def run_group(payload, input_kind, group):
    """The jobs of one (network, image, split) in this process: the head once, then each
    job; a list of results in the group's order."""
    first = group[0]
    head = pristine(payload, input_kind, first.network, first.image, first.split)
    return [run_job(payload, head, job) for job in group]


def reference_embeddings(n: int) -> np.ndarray:
    """Pristine 1280-d MobileNetV2 embeddings of the n inputs of the image set (N x 1280)."""
    import torch
    net = _network("mobilenet_v2")
    rows = []
    with torch.no_grad():
        for im in image_set(n):
            rows.append(net.model.embed(net.preprocess(im.image))[0].double().numpy())
    return np.stack(rows)


__all__ = ["Job", "Skipped", "Failed", "EvalImage", "pristine", "run_job", "run_group",
           "reference_embeddings", "classification_measures", "input_image", "jpeg_size"]
