"""The test conditions of the source method (spec Annex B): the intermediate features of
VGG16 and ResNet on a 224 x 224 input that the paper's Table 3 codes, at four QPs.

Pure data: the tests, the benchmark and the spec generator take the shapes from here.
"""

from __future__ import annotations

#: Feature name -> (channels, height, width) for one 224 x 224 input, in Table 3's order.
FEATURE_SHAPES: dict[str, tuple[int, int, int]] = {
    "vgg16.conv1": (64, 224, 224), "vgg16.pool1": (64, 112, 112),
    "vgg16.conv2": (128, 112, 112), "vgg16.pool2": (128, 56, 56),
    "vgg16.conv3": (256, 56, 56), "vgg16.pool3": (256, 28, 28),
    "vgg16.conv4": (512, 28, 28), "vgg16.pool4": (512, 14, 14),
    "vgg16.conv5": (512, 14, 14), "vgg16.pool5": (512, 7, 7),
    "resnet50.conv1": (64, 112, 112), "resnet50.pool1": (64, 56, 56),
    "resnet50.conv2": (256, 56, 56), "resnet50.conv3": (512, 28, 28),
    "resnet50.conv4": (1024, 14, 14), "resnet50.conv5": (2048, 7, 7),
}

#: The slice QPs of the test conditions.
QPS = (12, 22, 32, 42)
