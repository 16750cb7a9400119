"""Pictures to look at: decoded sample planes as PNG files (``refcodec decode --pictures``),
one mosaic per layer, and reference | decoded | difference images (``refcodec conformance
run --diff-images``).

An 8-bit plane is written as an 8-bit grey PNG; a 10- or 12-bit plane as a 16-bit grey PNG
holding the sample values themselves (not scaled), so that reading the file back gives the
decoded samples exactly.  Mosaics and difference images are for the eye: 8-bit, scaled.
Numpy and Pillow only.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

#: Samples of padding between the maps of a mosaic and the panels of a difference image.
GAP = 2
#: The largest mosaic or difference image written, in samples (bigger ones are reduced
#: by an integer factor).
MAX_IMAGE_SAMPLES = 4096 * 4096


def _image_module():
    from PIL import Image
    return Image


def safe_name(text: str) -> str:
    """A file-name part for an identifier (a layer_id may hold any character)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"
    return name[:80]


def write_png(path: Path, plane: np.ndarray, bit_depth: int) -> None:
    """One H x W plane of samples (0..2^bit_depth-1): 8-bit PNG at 8 bits, else a 16-bit PNG
    of the sample values; or an H x W x 3 uint8 picture (RGB)."""
    Image = _image_module()
    plane = np.asarray(plane)
    if plane.ndim == 3 and plane.shape[2] == 3:
        image = Image.fromarray(np.ascontiguousarray(plane.astype(np.uint8)))
    elif plane.ndim == 3 and plane.shape[2] == 1:
        image = Image.fromarray(np.ascontiguousarray(plane[:, :, 0].astype(np.uint8)))
    elif bit_depth <= 8:
        image = Image.fromarray(np.ascontiguousarray(plane.astype(np.uint8)))
    else:
        image = Image.fromarray(np.ascontiguousarray(plane.astype(np.uint16)))   # I;16
    image.save(path, format="PNG")


def read_png(path: Path) -> np.ndarray:
    """A PNG written by ``write_png`` as its samples (uint8 or uint16)."""
    Image = _image_module()
    with Image.open(path) as image:
        array = np.array(image)
        if image.mode.startswith("I"):
            return array.astype(np.uint16)
    return array


def to_8bit(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values scaled from lo..hi to 0..255 (NaN black, a constant map mid-grey)."""
    v = np.asarray(values, dtype=np.float64)
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        out = np.full(v.shape, 128.0)
    else:
        out = (v - lo) * (255.0 / (hi - lo))
    out = np.where(np.isfinite(out), out, 0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def mosaic(maps: np.ndarray, columns: int | None = None, fill: int = 0) -> np.ndarray:
    """K x H x W maps side by side in a near-square grid, GAP samples apart."""
    k, h, w = maps.shape
    cols = columns or max(1, math.ceil(math.sqrt(k * h / max(w, 1))))
    cols = min(cols, k) if k else 1
    rows = max(1, math.ceil(k / cols))
    out = np.full((rows * (h + GAP) - GAP, cols * (w + GAP) - GAP), fill, dtype=maps.dtype)
    for i in range(k):
        r, c = divmod(i, cols)
        out[r * (h + GAP):r * (h + GAP) + h, c * (w + GAP):c * (w + GAP) + w] = maps[i]
    return _reduced(out)


def _reduced(image: np.ndarray) -> np.ndarray:
    factor = math.ceil(math.sqrt(image.shape[0] * image.shape[1] / MAX_IMAGE_SAMPLES))
    return image[::factor, ::factor] if factor > 1 else image


def write_layer_pictures(directory: Path, index: int, layer_id: str, pictures: np.ndarray,
                         bit_depth: int) -> list[Path]:
    """Every decoded picture of a layer (P x H x W) as PNG, and one mosaic of them (8-bit,
    samples scaled from 0..2^bit_depth-1): ``layerI_ID/picture_NNNN.png`` and
    ``layerI_ID_mosaic.png``.  Returns the files written."""
    base = f"layer{index}_{safe_name(layer_id)}"
    folder = directory / base
    folder.mkdir(exist_ok=True)
    written = []
    digits = max(4, len(str(len(pictures) - 1)))
    for p, plane in enumerate(pictures):
        path = folder / f"picture_{p:0{digits}d}.png"
        write_png(path, plane, bit_depth)
        written.append(path)
    maps = to_8bit(pictures, 0, (1 << bit_depth) - 1)
    path = directory / f"{base}_mosaic.png"
    write_png(path, mosaic(maps), 8)
    written.append(path)
    return written


def write_texture(directory: Path, index: int, face_id: str, texture: np.ndarray) -> Path:
    """A decoded face texture (H x W x C uint8) as PNG."""
    path = directory / f"face{index}_{safe_name(face_id)}_texture.png"
    write_png(path, texture, 8)
    return path


def difference_image(reference: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """reference | decoded | amplified difference, side by side (8-bit): the two maps
    (or mosaics) scaled alike from the reference's range, the difference |d - r| scaled so
    that the largest one is white."""
    ref = np.asarray(reference, dtype=np.float64)
    dec = np.asarray(decoded, dtype=np.float64)
    finite = ref[np.isfinite(ref)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    diff = np.abs(dec - ref)
    diff = np.where(np.isnan(diff), np.inf, diff)
    worst = float(diff[np.isfinite(diff)].max()) if np.isfinite(diff).any() else 0.0
    amplified = np.where(np.isinf(diff), 255,
                         to_8bit(diff, 0.0, worst) if worst > 0 else 0).astype(np.uint8)
    panels = [to_8bit(ref, lo, hi), to_8bit(dec, lo, hi), amplified]
    h, w = ref.shape
    out = np.full((h, 3 * w + 2 * GAP), 255, dtype=np.uint8)
    for i, panel in enumerate(panels):
        out[:, i * (w + GAP):i * (w + GAP) + w] = panel
    return _reduced(out)


def write_difference(path: Path, reference: np.ndarray, decoded: np.ndarray) -> None:
    write_png(path, difference_image(reference, decoded), 8)


def prepare_directory(path: Path) -> Path:
    """The folder of ``--pictures``: created when missing; ValueError (one line) when it
    is not a folder or cannot be written."""
    import os
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{path}: cannot create the directory: {exc.strerror or exc}") \
            from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: directory is not writable")
    return path


def write_all(directory: Path, layers, textures: dict[str, np.ndarray]) -> list[Path]:
    """Every layer's pictures and mosaic (``layers``: (index, layer_id, P x H x W planes,
    bit_depth) tuples) and every face texture ({face_id: H x W x C}, in face order) into
    ``directory``; written to a temporary folder inside it first and moved in at the end,
    so that a failure leaves nothing behind."""
    import os
    import shutil
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix=".pictures-", dir=directory))
    try:
        for index, layer_id, planes, bit_depth in layers:
            write_layer_pictures(tmp, index, layer_id, planes, bit_depth)
        for index, (face_id, texture) in enumerate(textures.items()):
            write_texture(tmp, index, face_id, texture)
        written = []
        for item in sorted(tmp.iterdir()):
            target = directory / item.name
            if target.is_dir() and item.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
