"""Where the evaluation's images come from: the bundled photographs, a folder (recursively,
or ImageNet's validation layout), a list file, or arrays given in Python.

An image set is a list of ``ImageRef``: a key (the image's identity in the results store),
its position, and how to load it.  Nothing is decoded when the set is made: a worker loads
the image it evaluates (``load_image``).  A file that cannot be read raises
``ImageUnreadable`` there; the engine records it as skipped and goes on.

Folders (``folder_images``): every file whose name ends in one of ``IMAGE_SUFFIXES`` (any
case) below the folder, following no symbolic link to a folder, in the order of their
paths relative to the folder (POSIX form, sorted as strings); the key is that relative
path.  ImageNet's validation layout is a folder of class folders named by WordNet id
(``n01440764/ILSVRC2012_val_00000293.JPEG``): there the class folder gives the label.  A
labels file (``labels=``) gives labels explicitly, one ``NAME LABEL`` pair a line, NAME the
relative path or the bare file name, LABEL a class index of the network's output or a
WordNet id.  WordNet ids become class indices through the standard order (the sorted ids
of the 1000 ImageNet-1k classes, from the Debian package ``darknet`` when it is installed,
else the sorted class folders when there are exactly 1000 of them); otherwise they stay
strings and no accuracy is computed from them.

List files (``list_images``): one path a line, relative to the list file's folder unless
absolute; blank lines and lines starting with ``#`` are ignored; an optional label after a
tab.  The key is the path as written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import RefcodecError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".pnm")
#: The largest image (width x height) the evaluation decodes; larger files are skipped.
MAX_PIXELS = 64 * 1024 * 1024
_WNID = re.compile(r"^n\d{8}$")


class EvaluationError(RefcodecError, ValueError):
    """Bad options or inputs of the evaluation (a folder that does not exist, a results
    store of another run, ...)."""

    exit_code = 2


class ImageUnreadable(EvaluationError):
    """One image cannot be read; the run records it as skipped and goes on."""


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """One input of an image set (loaded lazily by ``load_image``).

    kind ``bundled``: ``source`` = (photograph of skimage.data, variant name, variant spec);
    ``file``: ``source`` = the path; ``array``: the image itself is in ``array``.
    ``label``: a class index (int), a class name (str) or None.
    """
    key: str
    index: int
    kind: str
    source: object
    label: object = None
    array: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False,
                                                 hash=False)


def bundled_images(network: str, n: int) -> list[ImageRef]:
    """The first n bundled inputs of a network (``images.image_set`` for classification,
    ``images.detection_image_set`` for the detector), as references."""
    from . import images
    specs = images.detection_set_specs(n) if network == "craft" else images.image_set_specs(n)
    return [ImageRef(f"{photo}/{variant}", i, "bundled", (photo, variant, spec))
            for i, (photo, variant, spec) in enumerate(specs)]


def _wnid_order(folders: Sequence[str]) -> dict[str, int] | None:
    from ..models.assets import DARKNET_DATA
    labels = DARKNET_DATA / "imagenet.labels.list"
    if labels.is_file():
        wnids = [w for w in labels.read_text().split("\n")[:1000] if w]
        if len(set(wnids)) == 1000:
            return {w: i for i, w in enumerate(sorted(wnids))}
    if len(set(folders)) == 1000:
        return {w: i for i, w in enumerate(sorted(set(folders)))}
    return None


def _parse_label(text: str):
    text = text.strip()
    if not text:
        return None
    return int(text) if re.fullmatch(r"\d+", text) else text


def _read_labels(path) -> dict[str, object]:
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise EvaluationError(f"cannot read the labels file: {exc.strerror}",
                              path=str(path)) from None
    out = {}
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise EvaluationError(f"line {n}: expected 'NAME LABEL', got {line!r}",
                                  path=str(path))
        out[parts[0].strip()] = _parse_label(parts[1])
    return out


def _map_wnids(refs: list[ImageRef], folders: Sequence[str]) -> list[ImageRef]:
    if not any(isinstance(r.label, str) and _WNID.match(r.label) for r in refs):
        return refs
    order = _wnid_order(folders)
    if order is None:
        return refs
    return [dataclasses.replace(r, label=order.get(r.label, r.label))
            if isinstance(r.label, str) else r for r in refs]


def folder_images(root, labels=None) -> list[ImageRef]:
    """Every image file below ``root`` (module doc), labelled by its ImageNet class folder
    or by ``labels`` (a labels file)."""
    root = Path(root)
    if not root.is_dir():
        raise EvaluationError("not a folder of images", path=str(root))
    found = []
    for dirpath, dirnames, filenames in os.walk(root):      # does not follow folder links
        dirnames.sort()
        for name in filenames:
            if name.lower().endswith(IMAGE_SUFFIXES):
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    found.sort()
    if not found:
        raise EvaluationError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) below the folder",
                              path=str(root))
    folders = [p.split("/")[0] for p in found if "/" in p]
    imagenet = len(folders) == len(found) and all(_WNID.match(f) for f in folders)
    given = _read_labels(labels) if labels else {}
    refs = []
    for i, rel in enumerate(found):
        label = given.get(rel, given.get(rel.rsplit("/", 1)[-1]))
        if label is None and imagenet:
            label = rel.split("/")[0]
        refs.append(ImageRef(rel, i, "file", str(root / rel), label))
    return _map_wnids(refs, folders if imagenet else [])


def list_images(list_file, labels=None) -> list[ImageRef]:
    """The images named in a list file (module doc)."""
    list_file = Path(list_file)
    try:
        lines = list_file.read_text().splitlines()
    except OSError as exc:
        raise EvaluationError(f"cannot read the image list: {exc.strerror}",
                              path=str(list_file)) from None
    given = _read_labels(labels) if labels else {}
    refs, seen = [], set()
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, label = line.rstrip("\n").partition("\t")
        name = name.strip()
        if name in seen:
            continue                    # a path listed twice is one input
        seen.add(name)
        path = Path(name) if Path(name).is_absolute() else list_file.parent / name
        lab = _parse_label(label) if label.strip() else given.get(
            name, given.get(name.rsplit("/", 1)[-1]))
        refs.append(ImageRef(name, len(refs), "file", str(path), lab))
    if not refs:
        raise EvaluationError("the image list names no image", path=str(list_file))
    return _map_wnids(refs, [])


def array_images(arrays: Sequence[np.ndarray]) -> list[ImageRef]:
    """Images given as H x W x 3 uint8 arrays; key ``array/<i>/<first 12 hex digits of the
    SHA-256 of shape and bytes>``."""
    refs = []
    for i, a in enumerate(arrays):
        a = np.ascontiguousarray(a)
        h = hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()[:12]
        refs.append(ImageRef(f"array/{i}/{h}", i, "array", None, None, a))
    return refs


def resolve_images(spec, network: str, labels=None) -> list[ImageRef]:
    """An image set from what the user gave: an int (the first n bundled inputs), a folder,
    a list file (any other existing file), a sequence of paths or arrays, or ImageRefs."""
    if isinstance(spec, (bool, np.bool_)):
        raise EvaluationError(f"images: expected a count, a folder, a list file or images, "
                              f"got {spec!r}")
    if isinstance(spec, (int, np.integer)):
        return bundled_images(network, int(spec))
    if isinstance(spec, (str, os.PathLike)):
        p = Path(spec)
        if p.is_dir():
            return folder_images(p, labels)
        if p.is_file():
            return list_images(p, labels)
        raise EvaluationError("no such folder or image list", path=str(p))
    items = list(spec)
    if not items:
        raise EvaluationError("images: the image set is empty")
    if all(isinstance(x, ImageRef) for x in items):
        return items
    if all(isinstance(x, np.ndarray) for x in items):
        return array_images(items)
    refs = []
    for i, x in enumerate(items):
        if not isinstance(x, (str, os.PathLike)):
            raise EvaluationError(f"images[{i}]: expected a path or an array, got "
                                  f"{type(x).__name__}")
        refs.append(ImageRef(str(x), i, "file", str(x)))
    return refs


def _as_rgb(img: np.ndarray) -> np.ndarray:
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        raise ValueError(f"expected uint8 samples, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an H x W x 3 image, got shape {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if min(img.shape[:2]) < 1:
        raise ValueError(f"the image is empty ({img.shape[0]} x {img.shape[1]})")
    return np.ascontiguousarray(img[:, :, :3])


def read_image_file(path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB (Pillow; the first frame; EXIF orientation is
    not applied).  Raises ImageUnreadable."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageUnreadable(f"{w} x {h} pixels is more than the {MAX_PIXELS} the "
                                      f"evaluation reads", path=str(path))
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGB")
            return _as_rgb(np.array(im))
    except ImageUnreadable:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ImageUnreadable(f"cannot read the image: {reason}", path=str(path)) from None


def load_image(ref: ImageRef) -> np.ndarray:
    """The pixels of one input, H x W x 3 uint8 RGB; ImageUnreadable if it cannot be read."""
    if ref.kind == "bundled":
        from .images import apply_variant, load_photo
        photo, _, spec = ref.source
        return apply_variant(load_photo(photo), spec)
    if ref.kind == "array":
        try:
            return _as_rgb(np.asarray(ref.array))
        except ValueError as exc:
            raise ImageUnreadable(str(exc), path=ref.key) from None
    return read_image_file(ref.source)
