"""Splitting a network at an intermediate layer and coding the feature that crosses the cut.

A network split at one point is a *head* (front end: image -> feature) and a *tail* (cloud
end: feature -> outputs).  The feature is one tensor, or a dict of named tensors when more
than one tensor crosses the cut (skip connections); either way it is coded as one VFC
stream, a dict as a multi-layer stream.  Works for any torch module and split point:

    split = SplitModel.from_sequence(list(model.features) + [pool, classifier], 7)
    y_pristine, y_coded, info = split_run(split.head, split.tail, x, codec_fn)

``code_feature`` is the codec round trip (refcodec.encode then refcodec.decode).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import codec as _codec

DEFAULT_LAYER_ID = "feature"


@dataclasses.dataclass
class CodedFeature:
    """Result of ``code_feature``: the reconstruction, the stream and its timings."""
    feature: object                  # tensor or dict, as given
    stream: bytes
    encode_seconds: float
    decode_seconds: float
    num_elements: int


def code_feature(feature, config: _codec.EncoderConfig | None = None, *,
                 detailed: bool = False):
    """Encode ``feature`` (a tensor, or a dict of tensors) to a VFC stream and decode it.

    Returns ``(reconstructed_feature, stream_bytes)`` (same structure, dtype and device as
    the input), or a ``CodedFeature`` with timings when ``detailed``.
    """
    config = config or _codec.EncoderConfig()
    single = isinstance(feature, torch.Tensor) or isinstance(feature, np.ndarray)
    items = {DEFAULT_LAYER_ID: feature} if single else dict(feature)
    arrays = {k: (v.detach().cpu().float().numpy() if isinstance(v, torch.Tensor)
                  else np.asarray(v, dtype=np.float32)) for k, v in items.items()}
    t0 = time.perf_counter()
    data = _codec.encode(arrays, config)
    t1 = time.perf_counter()
    decoded = _codec.decode(data)
    t2 = time.perf_counter()
    out = {}
    for k, v in items.items():
        y = decoded[k]
        if isinstance(v, torch.Tensor):
            y = torch.from_numpy(np.ascontiguousarray(y)).to(dtype=v.dtype, device=v.device)
        out[k] = y
    rec = out[DEFAULT_LAYER_ID] if single else out
    if not detailed:
        return rec, data
    return CodedFeature(rec, data, t1 - t0, t2 - t1,
                        int(sum(a.size for a in arrays.values())))


def split_run(model_prefix: Callable, model_suffix: Callable, x,
              codec_fn: Callable | None = None):
    """Run ``model_suffix(model_prefix(x))`` twice: on the pristine feature and on
    ``codec_fn(feature)`` (default: ``code_feature`` with the default EncoderConfig).

    Returns ``(pristine_output, reconstructed_output, coded)`` where ``coded`` is what
    ``codec_fn`` returned (for the default: ``(reconstructed_feature, stream_bytes)``).
    """
    codec_fn = codec_fn or code_feature
    with torch.no_grad():
        feature = model_prefix(x)
        pristine = model_suffix(feature)
        coded = codec_fn(feature)
        rec = coded[0] if isinstance(coded, tuple) else getattr(coded, "feature", coded)
        reconstructed = model_suffix(rec)
    return pristine, reconstructed, coded


class SplitModel(nn.Module):
    """A network cut into ``head`` and ``tail``; ``forward`` = tail(head(x)).

    ``SplitModel(module_list, split_index)``: the head runs ``module_list[:split_index + 1]``
    and the tail the rest (for a plain feed-forward chain of modules).  For networks whose
    tail needs more than one tensor, pass callables: ``SplitModel.from_functions``.
    """

    def __init__(self, modules: Sequence[nn.Module] | None = None, split_index: int = 0,
                 name: str = ""):
        super().__init__()
        self.name = name
        self._head_fn = self._tail_fn = None
        if modules is not None:
            modules = list(modules)
            if not 0 <= split_index < len(modules):
                raise ValueError(f"split_index shall be in 0..{len(modules) - 1}")
            self.front = nn.Sequential(*modules[:split_index + 1])
            self.back = nn.Sequential(*modules[split_index + 1:])

    @classmethod
    def from_sequence(cls, modules: Sequence[nn.Module], split_index: int, name: str = ""):
        return cls(modules, split_index, name)

    @classmethod
    def from_functions(cls, head: Callable, tail: Callable, name: str = ""):
        obj = cls(None, 0, name)
        obj._head_fn, obj._tail_fn = head, tail
        return obj

    def head(self, x):
        return self._head_fn(x) if self._head_fn else self.front(x)

    def tail(self, feature):
        return self._tail_fn(feature) if self._tail_fn else self.back(feature)

    def forward(self, x):
        return self.tail(self.head(x))
