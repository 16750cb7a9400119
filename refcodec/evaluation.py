"""Evaluation of VFC feature coding on real networks and real images (informative).

The paper's test conditions (section 4 of [CHEN2019], Table 3, Fig. 5) with what can be had
offline: real pretrained networks from PyPI packages (``refcodec.models``) and real
photographs shipped in scikit-image.  Everything runs on CPU, deterministically.

Image set (``image_set``)
    18 photographs of ``skimage.data`` (scikit-image 0.26.0; no download): astronaut,
    chelsea, coffee, rocket, motorcycle (left view of ``stereo_motorcycle``), camera, coins,
    clock, moon, text, page, retina, immunohistochemistry, hubble_deep_field, brick, grass,
    gravel, cell.  Grayscale ones are replicated to RGB.  Each is expanded by five variants,
    in this order (fractions of the photograph's height H and width W; a crop spans
    rows round(y0*H) .. round((y0+h)*H) and the same for columns):

        full          the whole photograph
        crop80-flip   centre crop of 80% x 80%, mirrored left-right
        crop70-tl     top-left crop of 70% x 70%
        crop70-br-flip  bottom-right crop of 70% x 70%, mirrored left-right
        crop50        centre crop of 50% x 50%

    Input k (0-based) is variant k // 18 of photograph k % 18: the default N = 36 is every
    photograph whole and centre-cropped-flipped; N <= 90.
    ``detection_image_set`` (for the text detector): the two photographs with text
    (``text``, ``page``), each in six variants: whole, left 60%, right 60%, top 70%,
    bottom 70%, centre 70% x 70%, and four photographs without text (chelsea, coffee,
    rocket, astronaut, whole; there any detection is a false one), in the order
    text/full, page/full, chelsea, text/left60, page/left60, coffee, text/right60,
    page/right60, rocket, text/top70, page/top70, astronaut, then the remaining text
    variants: the default N = 6 is the first two triples; N <= 16.

Preprocessing: see ``refcodec.models.imagenet_preprocess`` (resize shorter side to 256,
bilinear with antialiasing in torch, centre crop 224) and ``craft_preprocess`` (own
resolution, longer side at most 384, sides multiples of 32).

Measures, per network, split point, configuration and QP (``refcodec.metrics``, Annex C):

* rate: stream bytes of the feature (all tensors crossing the cut, one VFC stream per
  input, every byte of the stream counted), compression rate = float32 size / stream
  bytes (over all inputs), coded fraction = its reciprocal (the "Comp.Rate" of Table 3),
  bits per element;
* classification fidelity: share of inputs whose top-1 ImageNet class from the
  reconstructed feature equals the one from the pristine feature (C.2); also the top-5
  agreement A_5;
* retrieval fidelity: every input is a query against the other N - 1 inputs (the
  references).  An input's embedding is MobileNetV2's 1280-d globally pooled feature (its
  penultimate layer).  References always use the pristine embeddings (only query features
  are coded, as in the paper); the pristine ranking of query q orders the references by
  cosine similarity to q's embedding from the pristine feature, the reconstructed ranking
  by cosine similarity to q's embedding from the reconstructed feature (ties to the lower
  index).  Retrieval fidelity = mean over queries of the bubble index of the two full
  rankings (N - 1 items; C.3);
* detection fidelity: CRAFT text boxes (``refcodec.models.craft.detect_text_boxes``) from
  the pristine and the reconstructed feature, F_image of C.4 (threshold 0), mean over
  inputs;
* encode and decode time per input (one thread).

Jobs are (network, input, split, configuration, QP); they run in worker processes with one
torch thread each, and the results depend on the job only, not on the worker count.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from . import codec, metrics

QPS = (12, 22, 32, 42)

# ------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------

CORE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "camera", "coins",
               "clock", "moon", "text", "page", "retina", "immunohistochemistry",
               "hubble_deep_field", "brick", "grass", "gravel", "cell")

#: name -> (y0, x0, h, w, mirrored) as fractions of the photograph
VARIANTS = {
    "full": (0.0, 0.0, 1.0, 1.0, False),
    "crop80-flip": (0.1, 0.1, 0.8, 0.8, True),
    "crop70-tl": (0.0, 0.0, 0.7, 0.7, False),
    "crop70-br-flip": (0.3, 0.3, 0.7, 0.7, True),
    "crop50": (0.25, 0.25, 0.5, 0.5, False),
}
TEXT_VARIANTS = {
    "full": (0.0, 0.0, 1.0, 1.0, False),
    "left60": (0.0, 0.0, 1.0, 0.6, False),
    "right60": (0.0, 0.4, 1.0, 0.6, False),
    "top70": (0.0, 0.0, 0.7, 1.0, False),
    "bottom70": (0.3, 0.0, 0.7, 1.0, False),
    "crop70": (0.15, 0.15, 0.7, 0.7, False),
}
DETECTION_TEXT_PHOTOS = ("text", "page")
DETECTION_NEGATIVE_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")


@dataclasses.dataclass(frozen=True)
class EvalImage:
    key: str          # "photo/variant"
    photo: str
    variant: str
    image: np.ndarray = dataclasses.field(repr=False, compare=False)   # H x W x 3 uint8


def _skimage_data():
    try:
        import skimage.data
    except ImportError:
        from .models.assets import INSTALL_HINT
        raise RuntimeError(f"scikit-image is not installed: {INSTALL_HINT}") from None
    return skimage.data


def load_photo(name: str) -> np.ndarray:
    """A photograph of skimage.data as H x W x 3 uint8 RGB (gray replicated, alpha dropped)."""
    data = _skimage_data()
    img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"skimage.data.{name} is {img.dtype}, not a uint8 photograph")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def apply_variant(img: np.ndarray, spec) -> np.ndarray:
    y0, x0, h, w, flip = spec
    H, W = img.shape[:2]
    out = img[round(y0 * H):round((y0 + h) * H), round(x0 * W):round((x0 + w) * W)]
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def image_set(n: int = 36) -> list[EvalImage]:
    """The first n inputs of the classification / retrieval set (module doc)."""
    limit = len(CORE_PHOTOS) * len(VARIANTS)
    if not 1 <= n <= limit:
        raise ValueError(f"the image set has 1..{limit} inputs, asked for {n}")
    photos = {}
    out = []
    names = list(VARIANTS)
    for k in range(n):
        photo, variant = CORE_PHOTOS[k % len(CORE_PHOTOS)], names[k // len(CORE_PHOTOS)]
        if photo not in photos:
            photos[photo] = load_photo(photo)
        out.append(EvalImage(f"{photo}/{variant}", photo, variant,
                             apply_variant(photos[photo], VARIANTS[variant])))
    return out


def detection_image_set(n: int = 6) -> list[EvalImage]:
    """The first n inputs of the detection set (module doc)."""
    keys = []
    negatives = iter(DETECTION_NEGATIVE_PHOTOS)
    for variant in TEXT_VARIANTS:
        keys += [(p, variant, TEXT_VARIANTS[variant]) for p in DETECTION_TEXT_PHOTOS]
        neg = next(negatives, None)
        if neg is not None:
            keys.append((neg, "full", VARIANTS["full"]))
    if not 1 <= n <= len(keys):
        raise ValueError(f"the detection set has 1..{len(keys)} inputs, asked for {n}")
    photos = {}
    out = []
    for photo, variant, spec in keys[:n]:
        if photo not in photos:
            photos[photo] = load_photo(photo)
        out.append(EvalImage(f"{photo}/{variant}", photo, variant,
                             apply_variant(photos[photo], spec)))
    return out


def images_for(network: str, n: int) -> list[EvalImage]:
    return detection_image_set(n) if network == "craft" else image_set(n)


# ------------------------------------------------------------------------------------
# Configurations
# ------------------------------------------------------------------------------------

#: The paper's configuration (spec Annex B): log quantizer, 8 bits, one parameter set per
#: tensor, one channel per picture (packing "auto": maps smaller than 16 x 16 after padding,
#: which libx265 cannot code, are tiled, as Annex B.3), QP = slice QP.
BASELINE = "baseline"
PRESET_CONFIGS = {
    "baseline": {},
    "uniform": {"quantizer": "uniform"},
    "10bit": {"bit_depth": 10},
    "per_channel": {"per_channel": True},
    "tiled": {"packing": "tiled"},
}
_CONFIG_KEYS = {"quantizer": str, "bit_depth": int, "per_channel": lambda v: v in (
    "1", "true", "True", "yes"), "packing": str, "pad_mode": str, "preset": str}


def parse_config(spec: str) -> tuple[str, dict]:
    """``name`` of PRESET_CONFIGS, or ``name=key:value,key:value`` with keys quantizer,
    bit_depth, per_channel, packing, pad_mode, preset (EncoderConfig fields)."""
    if "=" not in spec:
        if spec not in PRESET_CONFIGS:
            raise ValueError(f"unknown configuration {spec!r}; presets: "
                             f"{', '.join(PRESET_CONFIGS)}, or name=key:value,...")
        return spec, dict(PRESET_CONFIGS[spec])
    name, _, body = spec.partition("=")
    fields = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition(":")
        if key not in _CONFIG_KEYS:
            raise ValueError(f"configuration {name!r}: unknown key {key!r}")
        fields[key] = _CONFIG_KEYS[key](value)
    codec.EncoderConfig(**fields)     # validate
    return name, fields


def encoder_config(fields: dict, qp: int) -> codec.EncoderConfig:
    return codec.EncoderConfig(qp=qp, **fields)


# ------------------------------------------------------------------------------------
# Jobs (run in workers)
# ------------------------------------------------------------------------------------

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
    from . import models
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
    from .models import code_feature
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


# ------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------

def retrieval_fidelity_of(queries_pristine, queries_reconstructed, references) -> float:
    """Mean bubble index: query q ranks references j != q by cosine similarity."""
    n = len(references)
    p_rank, r_rank = [], []
    for q in range(n):
        others = np.array([j for j in range(n) if j != q])
        if len(others) < 1:
            continue
        refs = references[others]
        p_rank.append(others[metrics.rank_references(queries_pristine[q][None], refs)[0]])
        r_rank.append(others[metrics.rank_references(queries_reconstructed[q][None], refs)[0]])
    if not p_rank:
        return 1.0
    return metrics.retrieval_fidelity(np.stack(p_rank), np.stack(r_rank))


def aggregate(rows: Sequence[dict], references: np.ndarray | None) -> list[dict]:
    """One summary row per (network, split, config, qp)."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["network"], r["split"], r["config"], r["qp"])].append(r)
    out = []
    for (network, split, config, qp), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["image_index"])
        elements = sum(r["elements"] for r in rs)
        nbytes = sum(r["bytes"] for r in rs)
        orig = metrics.original_bytes(elements)
        s = {"network": network, "split": split, "config": config, "qp": qp,
             "images": len(rs), "elements_per_image": rs[0]["elements"],
             "bytes_per_image": nbytes / len(rs),
             "compression_rate": metrics.compression_rate(orig, nbytes),
             "coded_fraction": metrics.coded_fraction(orig, nbytes),
             "bits_per_element": metrics.bits_per_element(nbytes, elements),
             "encode_s_per_image": float(np.mean([r["encode_s"] for r in rs])),
             "decode_s_per_image": float(np.mean([r["decode_s"] for r in rs])),
             "classification_fidelity": None, "top5_agreement": None,
             "retrieval_fidelity": None, "detection_fidelity": None}
        if "top1_pristine" in rs[0]:
            s["classification_fidelity"] = metrics.classification_fidelity(
                np.array([r["top1_pristine"] for r in rs]),
                np.array([r["top1_reconstructed"] for r in rs]))
            s["top5_agreement"] = float(np.mean([r["top5_agreement"] for r in rs]))
            if references is not None and len(rs) == len(references) and len(rs) >= 2:
                s["retrieval_fidelity"] = retrieval_fidelity_of(
                    np.stack([r["embedding_pristine"] for r in rs]),
                    np.stack([r["embedding_reconstructed"] for r in rs]), references)
        if "detection_fidelity_image" in rs[0]:
            s["detection_fidelity"] = float(np.mean([r["detection_fidelity_image"]
                                                     for r in rs]))
            s["inputs_with_pristine_detections"] = sum(r["detections_pristine"] > 0
                                                       for r in rs)
            s["pristine_detections"] = sum(r["detections_pristine"] for r in rs)
        out.append(s)
    order = {c: i for i, c in enumerate(dict.fromkeys(r["config"] for r in rows))}
    split_order = {}
    for r in rows:
        split_order.setdefault((r["network"], r["split"]), len(split_order))
    out.sort(key=lambda s: (split_order[(s["network"], s["split"])], order[s["config"]],
                            s["qp"]))
    return out


FIDELITIES = {"classification": "classification_fidelity", "retrieval": "retrieval_fidelity",
              "detection": "detection_fidelity"}


def bd_rates(summary: Sequence[dict], anchor: str = BASELINE) -> list[dict]:
    """BD-rate (PCHIP, plateaus reduced to their lowest rate, Annex C.5) of every
    configuration against ``anchor``, per network, split and task; rate in bits per
    element.  A curve the BD-rate cannot be computed for gets ``None`` and the reason."""
    curves = defaultdict(list)
    for s in summary:
        curves[(s["network"], s["split"], s["config"])].append(s)
    out = []
    for (network, split, config), pts in curves.items():
        if config == anchor or (network, split, anchor) not in curves:
            continue
        base = curves[(network, split, anchor)]
        for task, key in FIDELITIES.items():
            if pts[0][key] is None:
                continue
            row = {"network": network, "split": split, "config": config, "anchor": anchor,
                   "task": task, "bd_rate_percent": None, "note": ""}
            try:
                row["bd_rate_percent"] = metrics.bd_rate(
                    [p["bits_per_element"] for p in base], [p[key] for p in base],
                    [p["bits_per_element"] for p in pts], [p[key] for p in pts],
                    plateau="lowest_rate")
            except ValueError as exc:
                row["note"] = _clean_note(str(exc))
            out.append(row)
    return out


def _clean_note(text: str) -> str:
    """An exception text without numpy reprs, numbers to 4 significant digits."""
    import re
    text = re.sub(r"np\.float64\(([^)]*)\)", r"\1", text)
    return re.sub(r"\d+\.\d{5,}", lambda m: f"{float(m.group()):.4g}", text)


def jpeg_size(image_uint8: np.ndarray, quality: int = 75) -> int:
    """Bytes of the image coded by Pillow's JPEG encoder (libjpeg; baseline, 4:2:0 chroma
    subsampling, Pillow's default quantization tables scaled to ``quality``)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image_uint8).save(buf, format="JPEG", quality=quality)
    return buf.tell()


def network_input_image(network: str, x) -> np.ndarray:
    """The network input (after resizing / cropping) as H x W x 3 uint8 RGB."""
    from .models import IMAGENET_MEAN, IMAGENET_STD
    scale = 255.0 if network == "craft" else 1.0
    mean = np.array(IMAGENET_MEAN).reshape(3, 1, 1) * scale
    std = np.array(IMAGENET_STD).reshape(3, 1, 1) * scale
    v = x[0].double().numpy() * std + mean
    if network != "craft":
        v = v * 255.0
    return np.clip(np.rint(v), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def fig5(summary: Sequence[dict], networks: Iterable[str], n_by_net: dict,
         config: str = BASELINE, qp: int = 22) -> list[dict]:
    """Coded feature size at QP 22 relative to the network input image, raw (H x W x 3
    bytes) and coded as JPEG at quality 75 (Pillow), both summed over the inputs."""
    out = []
    for network in networks:
        net = _network(network)
        ims = images_for(network, n_by_net[network])
        raw = jpg = 0
        for im in ims:
            u8 = network_input_image(network, net.preprocess(im.image))
            raw += u8.size
            jpg += jpeg_size(u8)
        for s in summary:
            if s["network"] == network and s["config"] == config and s["qp"] == qp:
                fb = s["bytes_per_image"] * s["images"]
                out.append({"network": network, "split": s["split"], "qp": qp,
                            "feature_bytes_per_image": fb / len(ims),
                            "input_raw_bytes_per_image": raw / len(ims),
                            "input_jpeg75_bytes_per_image": jpg / len(ims),
                            "relative_to_raw_input": fb / raw,
                            "relative_to_jpeg75": fb / jpg})
    return out


# ------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------

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
    from . import models
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


# ------------------------------------------------------------------------------------
# Reports
# ------------------------------------------------------------------------------------

SUMMARY_COLUMNS = ["network", "split", "config", "qp", "images", "elements_per_image",
                   "bytes_per_image", "compression_rate", "coded_fraction",
                   "bits_per_element", "classification_fidelity", "top5_agreement",
                   "retrieval_fidelity", "detection_fidelity", "encode_s_per_image",
                   "decode_s_per_image"]
NETWORK_TITLES = {"mobilenet_v2": "MobileNetV2", "craft": "CRAFT (VGG16-BN)"}


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def write_csv(path, rows: Sequence[dict], columns: Sequence[str]):
    import csv
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else
                        (f"{r[c]:.6g}" if isinstance(r[c], float) else r[c]) for c in columns])


def table3(summary: Sequence[dict], config: str = BASELINE, qps: Sequence[int] = QPS) -> str:
    """Markdown table shaped like Table 3 of [CHEN2019]: rows = split points, per task and
    QP the coded fraction (coded / original, Table 3's "Comp.Rate") and the fidelity."""
    idx = {(s["network"], s["split"], s["qp"]): s for s in summary if s["config"] == config}
    tasks = [t for t, k in FIDELITIES.items() if any(s[k] is not None for s in idx.values())]
    head = ["Feat."] + [f"{t[:3].title()} QP{qp} {w}" for t in tasks for qp in qps
                        for w in ("rate", "fid.")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    networks = list(dict.fromkeys(s["network"] for s in summary))
    for network in networks:
        lines.append(f"| **{NETWORK_TITLES.get(network, network)}** |" + " |" *
                     (len(head) - 1))
        for split in dict.fromkeys(s["split"] for s in summary if s["network"] == network):
            cells = [split]
            for t in tasks:
                for qp in qps:
                    s = idx.get((network, split, qp))
                    if s is None or s[FIDELITIES[t]] is None:
                        cells += ["-", "-"]
                    else:
                        cells += [_fmt(s["coded_fraction"]), _fmt(s[FIDELITIES[t]])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(summary: Sequence[dict]) -> str:
    cols = ["network", "split", "config", "QP", "bytes/input", "comp. rate", "coded fr.",
            "bits/elem.", "cls", "top-5", "ret", "det", "enc s", "dec s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * 3 + "---:|" * (len(cols) - 3)]
    for s in summary:
        lines.append("| " + " | ".join([
            s["network"], s["split"], s["config"], str(s["qp"]), f"{s['bytes_per_image']:.0f}",
            f"{s['compression_rate']:.1f}", f"{s['coded_fraction']:.4f}",
            f"{s['bits_per_element']:.3f}", _fmt(s["classification_fidelity"]),
            _fmt(s["top5_agreement"]), _fmt(s["retrieval_fidelity"]),
            _fmt(s["detection_fidelity"]), f"{s['encode_s_per_image']:.2f}",
            f"{s['decode_s_per_image']:.2f}"]) + " |")
    return "\n".join(lines)


def bd_table(rows: Sequence[dict]) -> str:
    lines = ["| network | split | configuration | task | BD-rate vs baseline | note |",
             "|---|---|---|---|---:|---|"]
    for r in rows:
        v = "n/a" if r["bd_rate_percent"] is None else f"{r['bd_rate_percent']:+.1f} %"
        lines.append(f"| {r['network']} | {r['split']} | {r['config']} | {r['task']} | {v} | "
                     f"{r['note']} |")
    return "\n".join(lines)


def fig5_table(rows: Sequence[dict]) -> str:
    lines = ["| network | split | feature bytes/input (QP 22) | input raw bytes | "
             "input JPEG q75 bytes | feature / raw input | feature / JPEG q75 |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['split']} | {r['feature_bytes_per_image']:.0f} | "
                     f"{r['input_raw_bytes_per_image']:.0f} | "
                     f"{r['input_jpeg75_bytes_per_image']:.0f} | "
                     f"{r['relative_to_raw_input']:.3f} | {r['relative_to_jpeg75']:.2f} |")
    return "\n".join(lines)


def plot(result: dict, out_dir) -> list[str]:
    """Rate-fidelity curves (one figure per network, one panel per task, one line per split,
    baseline configuration), configuration comparison, and the Fig. 5 bars; PNG files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter
    from pathlib import Path
    out_dir = Path(out_dir)

    def log_x(ax):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())

    files = []
    summary = result["summary"]
    for network in dict.fromkeys(s["network"] for s in summary):
        rows = [s for s in summary if s["network"] == network]
        tasks = [t for t, k in FIDELITIES.items() if rows[0][k] is not None]
        fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 4.6), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            key = FIDELITIES[task]
            for split in dict.fromkeys(s["split"] for s in rows):
                pts = [s for s in rows if s["split"] == split and s["config"] == BASELINE]
                ax.plot([p["bits_per_element"] for p in pts], [p[key] for p in pts],
                        marker="o", label=split)
                for p in pts:
                    ax.annotate(f"{p['qp']}", (p["bits_per_element"], p[key]), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
            log_x(ax)
            ax.set_xlabel("bits per element (log scale); labels: QP")
            ax.set_ylabel(f"{task} fidelity")
            ax.set_title(f"{NETWORK_TITLES.get(network, network)}: {task} "
                         f"({rows[0]['images']} inputs)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(title="split", fontsize=8)
        fig.tight_layout()
        name = f"rate_fidelity_{network}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        files.append(name)
        configs = list(dict.fromkeys(s["config"] for s in rows))
        if len(configs) > 1:
            splits = list(dict.fromkeys(s["split"] for s in rows))
            task = "retrieval" if "retrieval" in tasks else tasks[0]
            key = FIDELITIES[task]
            cols = min(3, len(splits))
            nrows = math.ceil(len(splits) / cols)
            fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.0 * nrows),
                                     squeeze=False)
            for ax, split in zip(axes.ravel(), splits):
                for cfg in configs:
                    pts = [s for s in rows if s["split"] == split and s["config"] == cfg]
                    ax.plot([p["bits_per_element"] for p in pts], [p[key] for p in pts],
                            marker="o", label=cfg)
                log_x(ax)
                ax.set_title(f"{split}")
                ax.set_xlabel("bits per element")
                ax.set_ylabel(f"{task} fidelity")
                ax.grid(True, which="both", alpha=0.3)
                ax.legend(fontsize=7)
            for ax in axes.ravel()[len(splits):]:
                ax.axis("off")
            fig.suptitle(f"{NETWORK_TITLES.get(network, network)}: {task} fidelity of each "
                         f"configuration (QPs 12..42)")
            fig.tight_layout()
            name = f"configs_{network}.png"
            fig.savefig(out_dir / name, dpi=100)
            plt.close(fig)
            files.append(name)
    if result["fig5"]:
        rows = result["fig5"]
        fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows) + 2), 4.4))
        labels = [f"{NETWORK_TITLES.get(r['network'], r['network']).split()[0]}\n{r['split']}"
                  for r in rows]
        xs = np.arange(len(rows))
        ax.bar(xs - 0.2, [r["relative_to_raw_input"] for r in rows], 0.4,
               label="feature / raw input image")
        ax.bar(xs + 0.2, [r["relative_to_jpeg75"] for r in rows], 0.4,
               label="feature / input as JPEG q75")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(xs, labels, fontsize=8)
        ax.set_ylabel("coded feature size at QP 22 (input image = 1)")
        ax.set_title("Fig. 5 comparison: feature stream vs input image")
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / "fig5_size_vs_image.png", dpi=110)
        plt.close(fig)
        files.append("fig5_size_vs_image.png")
    return files


def write_reports(result: dict, out_dir, command: str = "") -> list[str]:
    """CSV, JSON, Markdown and PNG files of an evaluation into out_dir."""
    from pathlib import Path
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if command:
        result["meta"]["command"] = command
    command = result["meta"].get("command", "")
    write_csv(out / "summary.csv", result["summary"], SUMMARY_COLUMNS)
    job_cols = list(dict.fromkeys(k for r in result["jobs"] for k in r))
    write_csv(out / "jobs.csv", result["jobs"], job_cols)
    with open(out / "results.json", "w") as fh:
        json.dump(result, fh, indent=1, default=_json_default)
        fh.write("\n")
    pngs = plot(result, out)
    (out / "README.md").write_text(markdown_report(result, command, pngs))
    return ["summary.csv", "jobs.csv", "results.json", "README.md", *pngs]


def render(results_json, out_dir) -> list[str]:
    """Re-write the reports of a saved evaluation (results.json) without re-running it."""
    with open(results_json) as fh:
        result = json.load(fh)
    result["bd_rates"] = bd_rates(result["summary"])      # deterministic from the summary
    return write_reports(result, out_dir)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def markdown_report(result: dict, command: str, pngs: Sequence[str] = ()) -> str:
    m = result["meta"]
    lines = [
        "# VFC evaluation on real networks (AVS VFC test conditions)",
        "",
        f"Command: `{command}`  ",
        f"Wall time: {m['wall_time_s']:.0f} s with {m['workers']} worker processes "
        f"({m['jobs']} jobs; {m['cpu_count']} CPUs; Python {m['python']}, torch "
        f"{m['torch']}).  ",
        "Every number below comes from that run (`results.json`, `summary.csv`, "
        "`jobs.csv`); the definitions are in `refcodec/evaluation.py` and spec Annex C.",
        "",
        "## Networks, inputs, configurations",
        "",
    ]
    for n, desc in m["networks"].items():
        lines.append(f"- **{n}**: {desc}; {len(m['images'][n])} inputs; split points: " +
                     "; ".join(f"{s} = {d}" for s, d in m["splits"][n].items()) + ".")
    lines += [
        "- Inputs: real photographs of `skimage.data` (scikit-image), expanded by "
        "deterministic crops and flips (see `refcodec/evaluation.py`): "
        + ", ".join(f"{n}: " + ", ".join(m["images"][n]) for n in m["images"]) + ".",
        "- No ground truth is used: every fidelity compares the network's output from the "
        "reconstructed feature with its output from the pristine feature.",
        f"- QPs {', '.join(map(str, m['qps']))}; configurations: " + "; ".join(
            f"{k} = {v or 'log quantizer, 8-bit, per tensor, one channel per picture (auto)'}"
            for k, v in m["configs"].items()) + f". The detector is run with "
        f"{', '.join(m['detection_configs'])}.",
        "",
        "Reading the numbers:",
        "",
        "- With N inputs a classification fidelity moves in steps of 1/N; these are "
        "small real-image sets, not ImageNet / VehicleID / VOC: compare shapes of curves "
        "and configurations, not third decimals, with the paper.",
        "- MobileNetV2's pool5 is 1280 maps of 1 x 1. VFC pads every map to a multiple of "
        "8 (clause 8.3.10) and tiles the 8 x 8 maps into pictures, so its stream can be larger "
        "than the float32 feature (coded fraction above 1).",
        "- MobileNetV2's conv2..conv4 are linear bottleneck outputs (signed), unlike the "
        "post-ReLU features of the paper's VGG16 / ResNet.",
        "- CRAFT is a U-Net: from conv2 on, a cut carries the decoder's skip tensors too "
        "(see `refcodec/models/craft.py`), all coded in one multi-layer stream whose bytes "
        "are the rate. The paper's Faster R-CNN cut carries one tensor.",
        "- Encode / decode times are per input, one thread per worker, on a machine that "
        "may have been running other jobs.",
        "",
        "## Table 3 layout (baseline configuration)",
        "",
        "rate = coded fraction = stream bytes / float32 bytes of the feature (the quantity "
        "of Table 3's \"Comp.Rate\" column; its reciprocal is the compression rate); fid. = "
        "fidelity of the task (Cla = classification top-1, Ret = retrieval bubble index, "
        "Det = detection Eq. 4).",
        "",
        table3(result["summary"], qps=m["qps"]),
        "",
        "## All results",
        "",
        detail_table(result["summary"]),
        "",
        "## BD-rate against the baseline configuration",
        "",
        "PCHIP, rate in bits per element, plateaus of equal fidelity reduced to their "
        "lowest-rate point (Annex C.5). n/a: the curve is not monotone or saturates so that "
        "fewer than two points are left, or the fidelity ranges do not overlap.",
        "",
        bd_table(result["bd_rates"]),
        "",
        "## Fig. 5: coded feature size at QP 22 relative to the input image",
        "",
        "Input image = the network's input after resizing / cropping (224 x 224 for "
        "MobileNetV2; the resized CRAFT input); raw = H x W x 3 bytes; JPEG = Pillow's "
        "libjpeg encoder at quality 75 (4:2:0). Sums over the inputs.",
        "",
        fig5_table(result["fig5"]),
        "",
    ]
    if pngs:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in pngs] + [""]
    return "\n".join(lines)
