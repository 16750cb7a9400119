"""The evaluation inputs: photographs of skimage.data and their variants (the image set and
the detection image set of the package documentation)."""

from __future__ import annotations

import dataclasses
import functools

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


def _more_variants() -> dict:
    """The variants after the first five (the larger derived sets of ``image_set``), in
    this order: the whole photograph mirrored; then for crop sizes 80, 70, 60 and 50 % (of
    height and width) and positions tl, tr, bl, br, c (corners and centre), not mirrored and
    mirrored, each combination not already above; then the whole photograph scaled down to
    50 % and 35 % of its sides (Pillow bilinear, which filters when reducing), plain and
    mirrored.  A name is ``crop<size>-<pos>[-flip]``, ``full-flip`` or ``scale<s>[-flip]``."""
    out = {"full-flip": (0.0, 0.0, 1.0, 1.0, True)}
    for size in (80, 70, 60, 50):
        f = size / 100
        rest = round(1.0 - f, 2)
        positions = {"tl": (0.0, 0.0), "tr": (0.0, rest), "bl": (rest, 0.0),
                     "br": (rest, rest), "c": (round(rest / 2, 3), round(rest / 2, 3))}
        for pos, (y0, x0) in positions.items():
            for flip in (False, True):
                spec = (y0, x0, f, f, flip)
                if spec in VARIANTS.values() or spec in out.values():
                    continue
                out[f"crop{size}-{pos}" + ("-flip" if flip else "")] = spec
    for scale in (50, 35):
        for flip in (False, True):
            out[f"scale{scale}" + ("-flip" if flip else "")] = (0.0, 0.0, 1.0, 1.0, flip,
                                                                scale / 100)
    return out


VARIANTS.update(_more_variants())
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
    """A photograph of skimage.data as H x W x 3 uint8 RGB (gray replicated, alpha dropped);
    a new array on each call (the decoded photographs are cached per process)."""
    return _load_photo(name).copy()


@functools.lru_cache(maxsize=32)
def _load_photo(name: str) -> np.ndarray:
    data = _skimage_data()
    img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"skimage.data.{name} is {img.dtype}, not a uint8 photograph")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def apply_variant(img: np.ndarray, spec) -> np.ndarray:
    """Crop (fractions y0, x0, h, w of the photograph), mirror left-right when ``flip``,
    then, for a 6-element spec, scale both sides by ``scale`` (round(side * scale), at least
    1; Pillow's bilinear filter, which averages over the reduced footprint)."""
    y0, x0, h, w, flip = spec[:5]
    H, W = img.shape[:2]
    out = img[round(y0 * H):round((y0 + h) * H), round(x0 * W):round((x0 + w) * W)]
    if flip:
        out = out[:, ::-1]
    if len(spec) > 5 and spec[5] != 1.0:
        from PIL import Image
        s = spec[5]
        hh, ww = out.shape[:2]
        size = (max(1, round(ww * s)), max(1, round(hh * s)))
        out = np.asarray(Image.fromarray(np.ascontiguousarray(out)).resize(
            size, Image.Resampling.BILINEAR))
    return np.ascontiguousarray(out)


def image_set_specs(n: int = 36) -> list[tuple[str, str, tuple]]:
    """(photograph, variant, variant spec) of the first n inputs of the classification /
    retrieval set (module doc), without loading anything."""
    limit = len(CORE_PHOTOS) * len(VARIANTS)
    if not 1 <= n <= limit:
        raise ValueError(f"the image set has 1..{limit} inputs, asked for {n}")
    names = list(VARIANTS)
    out = []
    for k in range(n):
        photo, variant = CORE_PHOTOS[k % len(CORE_PHOTOS)], names[k // len(CORE_PHOTOS)]
        out.append((photo, variant, VARIANTS[variant]))
    return out


def detection_set_specs(n: int = 6) -> list[tuple[str, str, tuple]]:
    """(photograph, variant, variant spec) of the first n inputs of the detection set."""
    keys = []
    negatives = iter(DETECTION_NEGATIVE_PHOTOS)
    for variant in TEXT_VARIANTS:
        keys += [(p, variant, TEXT_VARIANTS[variant]) for p in DETECTION_TEXT_PHOTOS]
        neg = next(negatives, None)
        if neg is not None:
            keys.append((neg, "full", VARIANTS["full"]))
    if not 1 <= n <= len(keys):
        raise ValueError(f"the detection set has 1..{len(keys)} inputs, asked for {n}")
    return keys[:n]


def _materialise(specs) -> list[EvalImage]:
    return [EvalImage(f"{photo}/{variant}", photo, variant,
                      apply_variant(load_photo(photo), spec))
            for photo, variant, spec in specs]


def image_set(n: int = 36) -> list[EvalImage]:
    """The first n inputs of the classification / retrieval set (module doc)."""
    return _materialise(image_set_specs(n))


def detection_image_set(n: int = 6) -> list[EvalImage]:
    """The first n inputs of the detection set (module doc)."""
    return _materialise(detection_set_specs(n))


def images_for(network: str, n: int) -> list[EvalImage]:
    return detection_image_set(n) if network == "craft" else image_set(n)
