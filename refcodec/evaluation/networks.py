"""The networks an evaluation runs: the built-in ones, any torch module given in Python,
and a named architecture with a local weights file.

Built-in (``refcodec.models``): ``mobilenet_v2`` (classification and retrieval) and
``craft`` (text detection), with their named split points (conv1, ..., pool5).

Any torch module (``user_network``): the split point is the name of a submodule (as in
``model.named_modules()``, e.g. ``features.6`` or ``layer3``) or of a node of its traced
graph.  The module is traced with ``torch.fx.symbolic_trace`` and cut after the last
graph node of that submodule (``fx_split``): the head computes every value the rest of the
graph uses, the tail takes them.  When one tensor crosses the cut it is the coded feature;
when several do (a skip connection around the cut) all of them are coded, as layers of one
multi-layer stream named after the graph nodes, and the rate counts them all.  A module
that cannot be traced (data-dependent control flow) can be given as ``SplitModel`` objects
(head and tail callables) instead of split names.  The module is sent to each worker once
(Dask's scatter, or cloudpickle for classes defined in ``__main__``) and kept there.

Named architectures (``named_network``, ``--model ARCH:WEIGHTS``): ``ARCHITECTURES`` are
plain-PyTorch definitions with torchvision's parameter names, so a torchvision weights file
(a state_dict saved with ``torch.save``) loads into them with ``strict=True``: e.g.
``resnet50:/data/resnet50-0676ba61.pth``.  Nothing is downloaded; the file is read with
``torch.load(weights_only=True)``.  Their preprocessing is the ImageNet evaluation
preprocessing (``refcodec.models.imagenet_preprocess``), their task classification (the
logits of the last layer).  An untrained network proves nothing about fidelity: the
architectures without a weights file here are for shapes and throughput only.

A network's fingerprint (the SHA-256 of its parameter and buffer names, shapes, dtypes
and bytes) is recorded in the results store, which refuses rows of another network of the
same name.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence

from .sources import EvaluationError

TASKS = ("classification", "detection", "output")


@dataclasses.dataclass
class NetworkSpec:
    """What the driver knows about a network; ``payload`` is what the workers get (the
    name of a built-in network, or the ``refcodec.models.Network`` adapter of a user's)."""
    name: str
    task: str
    splits: dict            # split name -> description
    description: str
    fingerprint: str
    input_kind: str | None  # "imagenet", "craft" or None (own preprocessing)
    payload: object
    builtin: bool = False


def state_fingerprint(model) -> str:
    import torch
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def builtin_network(name: str, splits: Sequence[str] | None = None) -> NetworkSpec:
    from .. import models
    from .jobs import _network
    net = _network(name)                 # fails early (AssetMissing) if not installed
    chosen = list(splits) if splits else list(net.splits)
    for s in chosen:
        net.split(s)                     # KeyError for an unknown split
    return NetworkSpec(name, net.task, {s: net.splits[s] for s in chosen},
                       models.NETWORKS[name], _builtin_fingerprint(name),
                       "craft" if name == "craft" else "imagenet", name, builtin=True)


@functools.lru_cache(maxsize=None)
def _builtin_fingerprint(name: str) -> str:
    from ..models import assets
    h = hashlib.sha256()
    with open(assets.weights_path(name), "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------
# Any torch module
# ---------------------------------------------------------------------------------

def fx_split(model, point: str):
    """``model`` cut after the graph node ``point`` or after the last node of submodule
    ``point`` (module doc): a ``refcodec.models.SplitModel``."""
    import torch.fx as fx
    from ..models import SplitModel
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:          # fx raises many kinds (TraceError, TypeError, ...)
        raise EvaluationError(f"the module cannot be traced by torch.fx ({exc}); give the "
                              f"split as a SplitModel (head and tail callables)") from None
    nodes = list(gm.graph.nodes)
    hits = [i for i, n in enumerate(nodes) if n.name == point or (
        n.op == "call_module" and (n.target == point or n.target.startswith(point + ".")))]
    if not hits:
        names = [m for m, _ in model.named_children()]
        raise EvaluationError(f"split point {point!r} is neither a submodule nor a graph node "
                              f"of the module; its top-level submodules: {', '.join(names)}")
    cut = hits[-1]
    head_nodes, tail_nodes = nodes[:cut + 1], nodes[cut + 1:]
    if not tail_nodes or all(n.op == "output" for n in tail_nodes):
        raise EvaluationError(f"split point {point!r} is the output of the network")
    inside = set(head_nodes)
    crossing = [n for n in head_nodes if any(u not in inside for u in n.users)]
    head_graph, env = fx.Graph(), {}
    for n in head_nodes:
        env[n] = head_graph.node_copy(n, lambda a: env[a])
    head_graph.output(tuple(env[n] for n in crossing) if len(crossing) > 1
                      else env[crossing[0]])
    tail_graph, tenv = fx.Graph(), {}
    for n in crossing:
        tenv[n] = tail_graph.placeholder(n.name)
    for n in tail_nodes:
        tenv[n] = tail_graph.node_copy(n, lambda a: tenv[a])
    head_gm, tail_gm = fx.GraphModule(gm, head_graph), fx.GraphModule(gm, tail_graph)
    names = [n.name for n in crossing]
    if len(names) == 1:
        return SplitModel.from_functions(head_gm, tail_gm, point)

    def head(x):
        return dict(zip(names, head_gm(x)))

    def tail(f):
        return tail_gm(*[f[k] for k in names])
    return SplitModel.from_functions(head, tail, point)


def _user_split(splits: Mapping, model, point: str):
    s = splits.get(point)
    return s if s is not None else fx_split(model, point)


def user_network(model, split, *, name: str = "model", task: str = "classification",
                 preprocess: Callable | None = None, detections: Callable | None = None,
                 input_kind: str | None = None) -> NetworkSpec:
    """A NetworkSpec of any torch module.

    ``split``: a split point name, a list of them, a ``SplitModel``, or a mapping of names
    to split point names or SplitModels.  ``task``: ``classification`` (the output is
    N x K logits), ``detection`` (``detections(output)`` gives boxes, scores, labels) or
    ``output`` (any tensor output, compared by its mean squared error).  ``preprocess``:
    H x W x 3 uint8 image -> 1 x 3 x H x W tensor (default: ImageNet preprocessing).
    """
    import torch
    from .. import models
    if not isinstance(model, torch.nn.Module):
        raise EvaluationError(f"model shall be a torch.nn.Module, got {type(model).__name__}")
    if task not in TASKS:
        raise EvaluationError(f"task shall be one of {', '.join(TASKS)}, got {task!r}")
    if task == "detection" and detections is None:
        raise EvaluationError("task 'detection' needs detections=(output -> boxes, scores, "
                              "labels)")
    model = model.eval()
    if isinstance(split, (str, models.SplitModel)):
        split = [split]
    if isinstance(split, Mapping):
        items = dict(split)
    else:
        items = {}
        for s in split:
            key = s if isinstance(s, str) else (getattr(s, "name", "") or f"split{len(items)}")
            items[key] = s
    if not items:
        raise EvaluationError("split: no split point given")
    given = {k: v for k, v in items.items() if isinstance(v, models.SplitModel)}
    points = {k: (v if isinstance(v, str) else k) for k, v in items.items()}
    for k, v in points.items():
        if k not in given:
            fx_split(model, v)               # refuse a bad split point now, not in a worker
    if preprocess is None:
        preprocess, input_kind = models.imagenet_preprocess, input_kind or "imagenet"

    def make(s, _points=points, _given=given, _model=model):
        return _given[s] if s in _given else fx_split(_model, _points[s])
    docs = {k: (f"after {points[k]}" if k not in given else "SplitModel given") for k in items}
    net = models.Network(name, task, model, docs, preprocess, make, detections)
    return NetworkSpec(name, task, docs, f"{type(model).__name__} given in Python ({task})",
                       state_fingerprint(model), input_kind, net)


# ---------------------------------------------------------------------------------
# Named architectures with a local weights file
# ---------------------------------------------------------------------------------

def _resnet(block: str, layers: Sequence[int], num_classes: int = 1000):
    from torch import nn

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, cin, width, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=False)
            self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.downsample = downsample

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, width, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)   # ResNet v1.5
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(width * 4)
            self.relu = nn.ReLU(inplace=False)
            self.downsample = downsample

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    Block = BasicBlock if block == "basic" else Bottleneck

    class ResNet(nn.Module):
        """torchvision's ResNet module tree: conv1, bn1, relu, maxpool, layer1..layer4,
        avgpool, fc."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (width, n) in enumerate(zip((64, 128, 256, 512), layers), 1):
                stride = 1 if i == 1 else 2
                down = None
                if stride != 1 or cin != width * Block.expansion:
                    down = nn.Sequential(nn.Conv2d(cin, width * Block.expansion, 1, stride,
                                                   bias=False),
                                         nn.BatchNorm2d(width * Block.expansion))
                blocks = [Block(cin, width, stride, down)]
                cin = width * Block.expansion
                blocks += [Block(cin, width) for _ in range(n - 1)]
                setattr(self, f"layer{i}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet()


def _mobilenet_v2():
    from ..models.mobilenet_v2 import MobileNetV2
    return MobileNetV2()


#: name -> constructor of a plain-PyTorch network with torchvision's parameter names
ARCHITECTURES: dict[str, Callable] = {
    "mobilenet_v2": _mobilenet_v2,
    "resnet18": functools.partial(_resnet, "basic", (2, 2, 2, 2)),
    "resnet34": functools.partial(_resnet, "basic", (3, 4, 6, 3)),
    "resnet50": functools.partial(_resnet, "bottleneck", (3, 4, 6, 3)),
    "resnet101": functools.partial(_resnet, "bottleneck", (3, 4, 23, 3)),
    "resnet152": functools.partial(_resnet, "bottleneck", (3, 8, 36, 3)),
}


def load_architecture(arch: str, weights) -> object:
    """``ARCHITECTURES[arch]`` with the state_dict of the local file ``weights`` loaded
    strictly, in eval mode."""
    import torch
    if arch not in ARCHITECTURES:
        raise EvaluationError(f"unknown architecture {arch!r}; known: "
                              f"{', '.join(ARCHITECTURES)}")
    model = ARCHITECTURES[arch]()
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EvaluationError("no such weights file", path=str(weights)) from None
    except Exception as exc:          # torch.load raises many kinds on a bad file
        raise EvaluationError(f"cannot read the weights file: {exc}",
                              path=str(weights)) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(
            state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise EvaluationError(f"the weights file holds a {type(state).__name__}, not a "
                              f"state_dict", path=str(weights))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise EvaluationError(f"the weights do not fit {arch}: "
                              f"{' '.join(s.strip() for s in first[:3])}",
                              path=str(weights)) from None
    return model.eval()


def named_network(text: str, splits: Sequence[str]) -> NetworkSpec:
    """``[NAME=]ARCH:WEIGHTS`` (``--model``) with its split points (submodule names)."""
    name, sep, rest = text.partition("=")
    if not sep:
        name, rest = "", text
    arch, sep, weights = rest.partition(":")
    if not sep or not weights:
        raise EvaluationError(f"--model {text!r}: expected ARCH:WEIGHTS or NAME=ARCH:WEIGHTS "
                              f"(architectures: {', '.join(ARCHITECTURES)})")
    if not splits:
        raise EvaluationError(f"--model {text!r}: give its split points with --splits "
                              f"{name or arch}:MODULE,MODULE (e.g. layer2,layer3)")
    model = load_architecture(arch, weights)
    spec = user_network(model, list(splits), name=name or arch, task="classification")
    spec.description = f"{arch} (torchvision parameter names) with weights {weights}"
    return spec
