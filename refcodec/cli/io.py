"""Files of the command line: tensors (.npy / .npz / .pt), images (PNG and what Pillow
reads), stream input, and atomic output (temporary file + rename)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import ml_dtypes
import numpy as np

from .base import UsageError


def _torch():
    try:
        import torch
    except ImportError:
        raise UsageError(".pt files need torch: pip install 'refcodec[torch]'") from None
    return torch


def load_tensors(path: Path, layer_id: str | None) -> dict:
    """Read .npy / .npz / .pt into {layer_id: array or tensor}."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return {layer_id or path.stem: np.load(path, allow_pickle=False)}
        if suffix == ".npz":
            if layer_id:
                raise UsageError("--layer-id applies to .npy and single-tensor .pt input only; "
                                 ".npz arrays are named by their keys")
            with np.load(path, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
        if suffix == ".pt":
            obj = _torch().load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                if layer_id:
                    raise UsageError("--layer-id applies to a single tensor; this .pt holds a dict")
                return dict(obj)
            return {layer_id or path.stem: obj}
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise UsageError(f"{path}: cannot read {suffix} file: {exc}") from None
    raise UsageError(f"{path}: input shall be .npy, .npz or .pt, got '{suffix or path.name}'")


@contextlib.contextmanager
def atomic_output(path: Path):
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"{path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp",
                               dir=directory)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)       # mkstemp makes the file 0600: give it the usual mode
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_tensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".pt"):
        raise UsageError(f"{path}: output shall be .npy, .npz or .pt, got '{suffix or path.name}'")
    if suffix == ".npy" and len(tensors) != 1:
        raise UsageError(f"{path}: the stream has {len(tensors)} layers; write .npz or .pt, or "
                         f"pick one with --layer")
    torch = _torch() if suffix == ".pt" else None
    with atomic_output(path) as tmp:
        if suffix == ".pt":
            def to_torch(a):
                if a.dtype == ml_dtypes.bfloat16:
                    return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
                return torch.from_numpy(a)
            obj = {k: to_torch(v) for k, v in tensors.items()}
            torch.save(obj if len(obj) > 1 else next(iter(obj.values())), tmp)
            return
        # numpy files cannot hold bfloat16: it is widened to float32, which is exact.
        plain = {k: v.astype(np.float32) if v.dtype == ml_dtypes.bfloat16 else v
                 for k, v in tensors.items()}
        with open(tmp, "wb") as fh:
            if suffix == ".npy":
                np.save(fh, next(iter(plain.values())), allow_pickle=False)
            else:
                np.savez(fh, **plain)


def read_input(path: Path) -> bytes:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    return path.read_bytes()


def save_png(path: Path, image: np.ndarray) -> None:
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("--image needs Pillow: pip install 'refcodec[face]'") from None
    with atomic_output(path) as tmp:
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(tmp, format="PNG")


def load_image(path: Path, gray: bool = False) -> np.ndarray:
    """An image file (anything Pillow reads) as H x W x 3 RGB (or x 1 gray) uint8."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("reading images needs Pillow: pip install 'refcodec[face]'") from None
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L" if gray else "RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise UsageError(f"{path}: cannot read the image: {exc}") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def hevc_backend(template: str | None, timeout: float | None):
    """The HEVC backend of --hevc-encoder: None (libx265 through PyAV) without one, else a
    ready-made template by name (refcodec.hevc.external.TEMPLATES) or a command template."""
    if not template:
        if timeout is not None:
            raise UsageError("--hevc-encoder-timeout needs --hevc-encoder")
        return None
    from ..hevc.external import DEFAULT_TIMEOUT, TEMPLATES, ExternalBackend
    kwargs = {"timeout": DEFAULT_TIMEOUT if timeout is None else timeout}
    if not (kwargs["timeout"] > 0 and kwargs["timeout"] < float("inf")):
        raise UsageError(f"--hevc-encoder-timeout shall be a positive number of seconds, "
                         f"got {timeout!r}")
    if template in TEMPLATES:
        return ExternalBackend.named(template, **kwargs)
    return ExternalBackend(template, **kwargs)


def add_hevc_encoder_options(parser) -> None:
    from ..hevc.external import TEMPLATES
    parser.add_argument("--hevc-encoder", metavar="CMD",
                        help="code the pictures with another HEVC encoder: a template name "
                             f"({', '.join(sorted(TEMPLATES))}) or a command with the "
                             "placeholders {input} {output} {width} {height} {bit_depth} "
                             "{frames} {qp} {preset} {ctu} (run without a shell; "
                             "refcodec.hevc.external)")
    parser.add_argument("--hevc-encoder-timeout", type=float, metavar="S",
                        help="seconds the encoder may take per layer (default 600)")
