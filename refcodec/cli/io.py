"""Files of the command line: tensors (.npy / .npz / .pt), images (PNG and what Pillow
reads), stream input, and atomic output (temporary file + rename)."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import threading
import warnings
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


def check_input_file(path: Path) -> None:
    """UsageError unless ``path`` is a regular file, saying what it is otherwise."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path}: is not a regular file")


def _native(a: np.ndarray) -> np.ndarray:
    """A non-native byte order (a big-endian .npy) converted to the native one (exact)."""
    if a.dtype.byteorder not in ("=", "|") and a.dtype.fields is None:
        return a.astype(a.dtype.newbyteorder("="))
    return a


def _check_torch_tensors(path: Path, tensors: dict) -> None:
    """Refuse the tensors that hold no data the encoder can read: meta and sparse ones."""
    torch = _torch()
    for key, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            continue
        if t.is_meta:
            raise UsageError(f"{path}: tensor {key!r} is a meta tensor (it holds no data)")
        if t.layout != torch.strided:
            raise UsageError(f"{path}: tensor {key!r} has layout {t.layout}; only dense "
                             f"tensors are read (convert it with .to_dense())")


def load_tensors(path: Path, layer_id: str | None) -> dict:
    """Read .npy / .npz / .pt into {layer_id: array or tensor}."""
    check_input_file(path)
    if layer_id is not None and not layer_id:
        raise UsageError("--layer-id needs a name, got ''")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return {layer_id or path.stem: _native(np.load(path, allow_pickle=False))}
        if suffix == ".npz":
            if layer_id:
                raise UsageError("--layer-id applies to .npy and single-tensor .pt input only; "
                                 ".npz arrays are named by their keys")
            with np.load(path, allow_pickle=False) as archive:
                return {k: _native(archive[k]) for k in archive.files}
        if suffix == ".pt":
            torch = _torch()
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - see below
                if "weights only load failed" not in str(exc).lower():
                    raise
                raise UsageError(f"{path}: the .pt file holds something other than tensors "
                                 f"(it was not unpickled); only a tensor or a dict of tensors "
                                 f"is read") from None
            if isinstance(obj, dict):
                if layer_id:
                    raise UsageError("--layer-id applies to a single tensor; this .pt holds a dict")
                tensors = dict(obj)
            else:
                tensors = {layer_id or path.stem: obj}
            _check_torch_tensors(path, tensors)
            return tensors
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"{path}: cannot read {suffix} file: {first}") from None
    raise UsageError(f"{path}: input shall be .npy, .npz or .pt, got '{suffix or path.name}'")


def check_output_path(path: Path) -> None:
    """UsageError unless an output file can be written at ``path``: it is not a directory or
    another non-regular file, and its directory exists and is writable.  The commands call
    it before they decode or encode anything (atomic_output calls it again)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory")
    if path.exists() and not path.is_file():
        raise UsageError(f"{path}: is not a regular file")
    if not directory.exists():
        raise UsageError(f"{path}: directory {directory} does not exist")
    if not directory.is_dir():
        raise UsageError(f"{path}: {directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: directory {directory} is not writable")


class _Terminated(BaseException):
    """SIGTERM arrived while an output file was being written (atomic_output)."""


def _on_sigterm(signum, frame):
    raise _Terminated()


@contextlib.contextmanager
def atomic_output(path: Path):
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    The temporary file is removed on any failure, on Ctrl-C (KeyboardInterrupt) and on
    SIGTERM: in the main thread a SIGTERM handler is installed while the file is written;
    after the clean-up the previous disposition is restored and the signal raised again (by
    default the process then ends as killed by SIGTERM)."""
    check_output_path(path)
    directory = path.parent if str(path.parent) else Path(".")
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if previous in (signal.SIG_IGN, None):   # ignored, or not set from Python: leave it
            previous = None
        else:
            signal.signal(signal.SIGTERM, _on_sigterm)
    terminated = False
    try:
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
    except _Terminated:
        terminated = True
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if terminated:
        signal.raise_signal(signal.SIGTERM)   # the previous disposition: by default, exit
        raise SystemExit(128 + signal.SIGTERM)


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
    check_input_file(path)
    return path.read_bytes()


def save_png(path: Path, image: np.ndarray) -> None:
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("--image needs Pillow: pip install 'refcodec[face]'") from None
    with atomic_output(path) as tmp:
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(tmp, format="PNG")


#: The largest image (width * height) encode-face reads: a 4096 x 4096 photograph. Face
#: detection on a larger one takes minutes and gigabytes (measured: 12000 x 12000, 146 s,
#: 6.9 GB) for a face the detector finds at this size too.
MAX_IMAGE_PIXELS = 4096 * 4096


def load_image(path: Path, gray: bool = False) -> np.ndarray:
    """An image file (anything Pillow reads) as H x W x 3 RGB (or x 1 gray) uint8."""
    check_input_file(path)
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("reading images needs Pillow: pip install 'refcodec[face]'") from None
    try:
        with warnings.catch_warnings():   # the size is checked here, one line on error
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)        # reads the header only
        with img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise UsageError(
                    f"{path}: the image is {width}x{height}, more than the "
                    f"{MAX_IMAGE_PIXELS // 10**6} million pixels refcodec reads for a face; "
                    f"crop or scale it down first")
            arr = np.asarray(img.convert("L" if gray else "RGB"), dtype=np.uint8)
    except UsageError:
        raise
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
