"""The evaluation inputs: photographs of skimage.data and their variants (the image set and
the detection image set of the package documentation)."""

from __future__ import annotations

import dataclasses

import numpy as np

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
        from ..models.assets import INSTALL_HINT
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
