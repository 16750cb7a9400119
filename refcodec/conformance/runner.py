"""The runner: any decoder (a command line, ``command_decoder``) over the streams of a
manifest (``run_suite``, ``run_stream``), its outputs compared with the references
(``check_output``: tensors and faces, tier 2; ``check_planes``: planes, tier 1) and the
summary table (``format_results``).  conformance/README.md documents the placeholders and
the results record.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fnmatch
import hashlib
import math
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import ml_dtypes
import numpy as np

from ..codec import NUMPY_DTYPES
from ..face import texture as face_texture
from ..processes import kill_group
from .checksums import planes_md5_hex, tensor_bits
from .errors import SuiteError
from .features import DTYPE_NAMES
from .manifest import SCHEMA_VERSION, face_keys, load_manifest


PLACEHOLDERS = ("{input}", "{output}", "{planes}")


@dataclasses.dataclass
class DecoderRun:
    """What one decoder run did."""

    returncode: int | None          # None: timed out
    stderr: str = ""
    seconds: float = 0.0


Decoder = Callable[[Path, Path | None, Path | None], DecoderRun]


def command_decoder(template: str, timeout: float = 120.0) -> tuple[Decoder, bool, bool]:
    """A decoder running the command line ``template`` (no shell: it is split with
    shlex and the placeholders are replaced inside each argument), and whether it writes
    {output} and {planes}."""
    try:
        argv = shlex.split(template)
    except ValueError as exc:
        raise SuiteError(f"--decoder: {exc}") from None
    if not argv:
        raise SuiteError("--decoder: empty command")
    joined = " ".join(argv)
    if "{input}" not in joined:
        raise SuiteError("--decoder: the command has no {input} placeholder")
    unknown = set(re.findall(r"\{[A-Za-z_]+\}", joined)) - set(PLACEHOLDERS)
    if unknown:
        raise SuiteError(f"--decoder: unknown placeholder(s) {', '.join(sorted(unknown))}; "
                         f"the placeholders are {', '.join(PLACEHOLDERS)}")
    has_output, has_planes = "{output}" in joined, "{planes}" in joined

    def run(input_path: Path, output: Path | None, planes: Path | None) -> DecoderRun:
        args = []
        for arg in argv:
            arg = arg.replace("{input}", str(input_path))
            arg = arg.replace("{output}", str(output)) if output else arg
            arg = arg.replace("{planes}", str(planes)) if planes else arg
            args.append(arg)
        if _cancelled.is_set():
            return DecoderRun(None, "interrupted")
        started = time.perf_counter()
        try:
            # its own session and process group: a timeout or a signal of the runner kills
            # every process it started; stdout is not read, stderr only its last 64 KiB
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise SuiteError(f"--decoder: cannot run {args[0]!r}: {exc.strerror or exc}") \
                from None
        _running.add(proc)
        try:
            timed_out, err = _wait_bounded(proc, timeout)
        finally:
            kill_group(proc)
            _running.discard(proc)
            proc.stderr.close()
        seconds = time.perf_counter() - started
        if _cancelled.is_set():
            return DecoderRun(None, "interrupted", seconds)
        if timed_out:
            return DecoderRun(None, f"timed out after {timeout:g} s", seconds)
        return DecoderRun(proc.returncode, err.decode("utf-8", "replace"), seconds)
    return run, has_output, has_planes


#: How much of a decoder's error output the runner keeps (its end).
STDERR_LIMIT = 64 * 1024
#: How long the runner still reads the error output once the decoder has exited (a
#: process it left behind, outside its process group, may hold the pipe open).
EXIT_GRACE = 1.0

#: The decoders running now (killed by ``interrupt``) and the temporary folders of the
#: streams being run (removed by ``remove_temporary``).
_running: set[subprocess.Popen] = set()
_temporary: set[str] = set()
_cancelled = threading.Event()


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the decoder has exited, without reaping it while its group may live on (the
    zombie keeps its process group id from being reused before ``kill_group``)."""
    if proc.returncode is not None:
        return True
    if hasattr(os, "waitid"):
        try:
            return os.waitid(os.P_PID, proc.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return proc.poll() is not None
    return proc.poll() is not None  # pragma: no cover - not POSIX


def _wait_bounded(proc: subprocess.Popen, timeout: float) -> tuple[bool, bytes]:
    """Wait for the decoder, reading the last STDERR_LIMIT bytes of its error output;
    (timed out, the error output).  Never waits for the end of the pipe more than
    EXIT_GRACE seconds after the decoder exited."""
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    kept = bytearray()
    deadline = time.monotonic() + timeout
    exited_at = None
    eof = False
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if exited_at is None and _exited(proc):
                exited_at = now
            if exited_at is not None and (eof or now - exited_at > EXIT_GRACE):
                break
            if _cancelled.is_set():
                return True, bytes(kept)
            if exited_at is None and now >= deadline:
                return True, bytes(kept)
            if eof:
                time.sleep(min(0.02, max(0.0, deadline - now)))
                continue
            limit = deadline if exited_at is None else exited_at + EXIT_GRACE
            if not sel.select(min(0.1, max(0.0, limit - now))):
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                eof = True
                sel.unregister(fd)
                continue
            kept += chunk
            if len(kept) > 2 * STDERR_LIMIT:
                del kept[:-STDERR_LIMIT]
    return False, bytes(kept[-STDERR_LIMIT:])


class RunInterrupted(BaseException):
    """The runner received SIGINT or SIGTERM (``handle_signals``); its decoders are killed."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


def interrupt() -> None:
    """Stop the run: no decoder starts any more and the running ones are killed with their
    process groups (safe in a signal handler)."""
    _cancelled.set()
    for proc in list(_running):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            pass


def remove_temporary() -> None:
    """Remove the temporary folders of the streams being run."""
    for path in list(_temporary):
        shutil.rmtree(path, ignore_errors=True)
        _temporary.discard(path)


@contextlib.contextmanager
def handle_signals():
    """While the block runs, SIGINT and SIGTERM kill the running decoders and raise
    RunInterrupted in the main thread; on leaving, the handlers are restored and the
    temporary folders removed.  Only for a command-line run (the main thread)."""
    def handler(signum, frame):
        if _cancelled.is_set():
            return              # already stopping: a second signal changes nothing
        interrupt()
        raise RunInterrupted(signum)
    _cancelled.clear()
    signums = ([signal.SIGINT, signal.SIGTERM]
               if threading.current_thread() is threading.main_thread() else [])
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        interrupt()
        for s, old in previous.items():
            signal.signal(s, old)
        remove_temporary()
        _cancelled.clear()


class OutputTooLarge(ValueError):
    """An output array whose header declares more values than the manifest expects."""


#: Values an array the manifest does not expect may hold (it is loaded only to be reported).
UNEXPECTED_LIMIT = 1 << 16
#: Bytes per value an output array may declare (float64, int64).
_MAX_ITEMSIZE = 8


def _npy_header(fp) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an .npy header declares (the data is not read)."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    elif version == (3, 0) and hasattr(np.lib.format, "_read_array_header"):
        shape, _, dtype = np.lib.format._read_array_header(fp, version)
    else:
        raise ValueError(f".npy format version {version} not supported")
    return tuple(shape), dtype


def _check_declared(key: str | None, shape, dtype: np.dtype, limit: int) -> None:
    count = math.prod(shape)
    if dtype.hasobject or count > limit or count * dtype.itemsize > limit * _MAX_ITEMSIZE:
        what = f"array {key}" if key is not None else "the array"
        raise OutputTooLarge(f"{what} declares {dtype}{list(shape)} ({count} values), more "
                             f"than the {limit} the manifest expects: not loaded")


def _check_headers(path: Path, limits: Mapping[str, int]) -> None:
    """Refuse, from the .npy headers alone, an output whose arrays declare more values
    than the manifest expects (``limits``: the values of each array name; another name may
    hold UNEXPECTED_LIMIT values; a plain .npy as many as the largest)."""
    with open(path, "rb") as fh:
        magic = fh.read(len(np.lib.format.MAGIC_PREFIX))
        fh.seek(0)
        if magic == np.lib.format.MAGIC_PREFIX:
            shape, dtype = _npy_header(fh)
            _check_declared(None, shape, dtype, max(limits.values(), default=UNEXPECTED_LIMIT))
            return
    if not zipfile.is_zipfile(path):
        return                  # np.load reports what it is not
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with zf.open(info) as member:
                shape, dtype = _npy_header(member)
            _check_declared(key, shape, dtype, limits.get(key, UNEXPECTED_LIMIT))


def _load_arrays(path: Path, limits: Mapping[str, int] | None = None
                 ) -> dict[str, np.ndarray] | np.ndarray:
    if limits is not None:
        _check_headers(path, limits)
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return {k: loaded[k] for k in loaded.files}
    return loaded


def reference_tensor(manifest_dir: Path, stream: dict, layer: dict) -> np.ndarray:
    """A layer's reference tensor in its source dtype (bfloat16 bit patterns reinterpreted)."""
    with np.load(manifest_dir / stream["reference"], allow_pickle=False) as z:
        array = z[layer["layer_id"]]
    if layer["reference_encoding"] == "bfloat16-bits-as-uint16":
        return array.view(ml_dtypes.bfloat16)
    return array


def as_source_dtype(array: np.ndarray, dtype: str) -> tuple[np.ndarray | None, str]:
    """A decoder's output array as the layer's source dtype, with a note on how it was
    read, or (None, reason).  bfloat16 may come as bfloat16, as its bit patterns in uint16
    (or 2-byte void) or widened to float32 (exactly: the low 16 bits zero)."""
    target = NUMPY_DTYPES[DTYPE_NAMES[dtype]]
    got = array.dtype
    if got == target or (got.kind == "f" and got.itemsize == target.itemsize
                         and dtype != "bfloat16"):
        return array.astype(target), ""
    if dtype == "bfloat16":
        if got.kind in "uV" and got.itemsize == 2:
            return np.ascontiguousarray(array).view("<u2").astype("<u2").view(target), \
                "bfloat16 read from uint16 bit patterns"
        if got.kind == "f" and got.itemsize == 4:
            bits = tensor_bits(array.astype(np.float32))
            if np.any(bits & 0xFFFF):
                return None, "float32 values that are not bfloat16 values"
            return (bits >> 16).astype("<u2").view(target), "bfloat16 read from float32"
    return None, f"dtype {got} instead of {dtype}"


def compare_tensor(got: np.ndarray, ref: np.ndarray, layer: dict) -> tuple[bool, str]:
    """Tier 2 (clause 12.3): (passed, 'exact' | 'tolerance' | a reason of failure)."""
    if tuple(got.shape) != tuple(layer["shape"]):
        return False, f"shape {list(got.shape)} instead of {layer['shape']}"
    got_bits, ref_bits = tensor_bits(got), tensor_bits(ref)
    if np.array_equal(got_bits, ref_bits):
        return True, "exact"
    differ = int(np.count_nonzero(got_bits != ref_bits))
    y = got.astype(np.float64)
    r = ref.astype(np.float64)
    error = np.abs(y - r)
    tol = layer["tolerance"]
    worst = float(np.max(np.where(np.isnan(error), np.inf, error)))
    if tol["kind"] == "exact":
        return False, (f"{differ} of {got.size} values differ from the reference (the "
                       f"{layer['quantizer']} quantizer is exact); largest |y - r| {worst:.6g}")
    limits = np.array([math.ldexp(1.0, s["max_abs_error_log2"]) for s in tol["param_sets"]])
    if len(limits) > 1:
        shape = [1] * got.ndim
        axis = 3 if layer["layout"] == "NHWC" else 1
        shape[axis] = len(limits)
        limit = limits.reshape(shape)
    else:
        limit = limits[0]
    ok = np.isfinite(y) & (error <= limit)
    if ok.all():
        return True, "tolerance"
    outside = int(np.count_nonzero(~ok))
    return False, (f"{outside} of {got.size} values outside the tolerance of clause 12.3 "
                   f"(largest |y - r| {worst:.6g}, tolerance {float(np.min(limits)):.6g}"
                   + (" and more" if len(limits) > 1 else "") + ")")


def reference_faces(manifest_dir: Path, stream: dict) -> dict[str, np.ndarray]:
    """The reference arrays of a stream's faces (embedding:, image:, texture:<face_id>)."""
    names = {key for face in stream.get("faces", []) for key in face_keys(face["face_id"])}
    with np.load(manifest_dir / stream["reference"], allow_pickle=False) as z:
        return {key: z[key] for key in z.files if key in names}


def compare_embedding(got: np.ndarray, ref: np.ndarray) -> tuple[bool, str]:
    """A decoded embedding against the reference: bit-exact float32 values (clause 13.7.1)."""
    if got.shape != ref.shape:
        return False, f"embedding of shape {list(got.shape)} instead of {list(ref.shape)}"
    if got.dtype.kind != "f":
        return False, f"embedding of dtype {got.dtype} instead of float32"
    as32 = got.astype(np.float32)
    if got.dtype != np.float32 and not np.array_equal(as32.astype(got.dtype), got,
                                                      equal_nan=True):
        return False, f"embedding of {got.dtype} values that are not float32 values"
    differ = int(np.count_nonzero(tensor_bits(as32) != tensor_bits(ref)))
    if differ:
        return False, (f"{differ} of {ref.size} embedding values differ from the reference "
                       f"(exact, clause 13.7.1)")
    return True, "exact"


def _as_image(got: np.ndarray, shape: Sequence[int], what: str) -> tuple[np.ndarray | None, str]:
    """A decoder's H x W x C (or H x W for one channel) 8-bit array as int64, or a reason."""
    shape = tuple(shape)
    if got.shape == shape[:2] and shape[2] == 1:
        got = got[:, :, None]
    if got.shape != shape or got.dtype.kind not in "ui":
        return None, (f"{what} {got.dtype}{list(got.shape)}, expected 8-bit integers of shape "
                      f"{list(shape)}")
    if got.size and (got.min() < 0 or got.max() > 255):
        return None, f"{what} samples outside 0..255"
    return got.astype(np.int64), ""


def compare_image(got: np.ndarray, ref: np.ndarray, enh: dict) -> tuple[bool, str]:
    """A decoded face image against the reference, within the face's tolerance (clause
    13.7.3): (passed, 'exact' | 'tolerance' | a reason of failure)."""
    image, why = _as_image(got, enh["image_shape"], "image")
    if image is None:
        return False, why
    error = np.abs(image - ref.astype(np.int64))
    worst = int(error.max()) if error.size else 0
    if worst == 0:
        return True, "exact"
    tol = enh["tolerance"]
    limit = tol["max_abs_error"] if tol["kind"] == "abs" else 0
    if worst <= limit:
        return True, "tolerance"
    outside = int(np.count_nonzero(error > limit))
    return False, (f"{outside} of {error.size} image samples differ from the reference by "
                   f"more than {limit} (largest {worst}; "
                   + ("exact without a predictor" if tol["kind"] == "exact" else
                      f"tolerance {limit} with a predictor")
                   + ", clause 13.7.3)")


def check_texture(got: np.ndarray, face: dict) -> tuple[list[str], str]:
    """A decoded face texture against texture_md5 (clauses 13.4.7 and 13.7.2): (failure
    reasons, a note).  An HEVC texture must match; a JPEG or JPEG 2000 texture that does not
    is allowed (the decoder warns and uses its own texture): the note says so."""
    enh, fid = face["enhancement"], face["face_id"]
    texture, why = _as_image(got, enh["image_shape"], "texture")
    if texture is None:
        return [f"face {fid}: {why}"], ""
    md5 = face_texture.texture_md5(texture.astype(np.uint8)).hex()
    if md5 == enh["texture_md5"]:
        return [], ""
    if enh.get("texture_codec", "hevc") != "hevc":
        return [], (f"face {fid}: the {enh['texture_codec']} texture differs from the "
                    f"encoder's (texture_md5), which clause 13.7.2 allows: its image is not "
                    f"compared")
    return [f"face {fid}: texture MD5 {md5}, expected texture_md5 {enh['texture_md5']}"], ""


def check_faces(arrays: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                faces: Sequence[dict]) -> tuple[list[str], list[str], list[str]]:
    """A decoder's face outputs (embedding:, image: and, when given, texture:<face_id>)
    against the references (clause 13.7); (failure reasons, the tier of each passed check,
    notes).  The image of a JPEG or JPEG 2000 face whose given texture differs from
    texture_md5 is not compared (clause 13.7.3), only its shape checked."""
    reasons, tiers, notes = [], [], []
    for face in faces:
        fid, enh = face["face_id"], face.get("enhancement")
        emb_key, image_key, texture_key = face_keys(fid)
        if emb_key not in arrays:
            reasons.append(f"face {fid}: no {emb_key}")
        else:
            passed, detail = compare_embedding(arrays[emb_key], reference[emb_key])
            (tiers if passed else reasons).append(detail if passed else f"face {fid}: {detail}")
        if enh is None:
            continue
        note = ""
        if texture_key in arrays:
            why, note = check_texture(arrays[texture_key], face)
            reasons += why
            if note:
                notes.append(note)
        if image_key not in arrays:
            reasons.append(f"face {fid}: no {image_key}")
        elif note:
            image, why = _as_image(arrays[image_key], enh["image_shape"], "image")
            if image is None:
                reasons.append(f"face {fid}: {why}")
            else:
                tiers.append("tolerance")
        else:
            passed, detail = compare_image(arrays[image_key], reference[image_key], enh)
            if passed:
                tiers.append(detail)
            else:
                hint = "" if enh.get("texture_codec", "hevc") == "hevc" or \
                    texture_key in arrays else \
                    (f"; a decoder whose {enh['texture_codec']} texture differs from the "
                     f"encoder's may show it with {texture_key}")
                reasons.append(f"face {fid}: {detail}{hint}")
    return reasons, tiers, notes


def _expected_sizes(stream: dict, *, planes: bool) -> dict[str, int]:
    """The number of values of each array a decoder's output (or planes) file may hold."""
    sizes = {}
    for layer in stream["layers"]:
        pics = layer["pictures"]
        sizes[layer["layer_id"]] = (pics["count"] * pics["height"] * pics["width"] if planes
                                    else math.prod(layer["shape"]))
    for face in stream.get("faces", []):
        emb_key, image_key, texture_key = face_keys(face["face_id"])
        sizes[emb_key] = face["embedding_dim"]
        if face.get("enhancement") is not None:
            sizes[image_key] = sizes[texture_key] = math.prod(face["enhancement"]["image_shape"])
    return sizes


def check_planes(path: Path, stream: dict, notes: list[str] | None = None,
                 mismatches: list[dict] | None = None, diff_images: Path | None = None,
                 manifest_dir: Path | None = None) -> list[str]:
    """Tier 1 (clause 12.2): the decoder's pictures against planes_md5 and its face textures
    against texture_md5; failure reasons (notes on allowed differences go to ``notes``; with
    ``manifest_dir``, the analysis of each layer whose pictures differ from the reference
    decoder's goes to ``mismatches`` and its difference image to ``diff_images``)."""
    if not path.is_file():
        return ["wrote no planes file"]
    try:
        arrays = _load_arrays(path, _expected_sizes(stream, planes=True))
    except OutputTooLarge as exc:
        return [f"planes file refused: {exc}"]
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a failure of the decoder
        return [f"planes file unreadable: {exc}"]
    enhanced = [f for f in stream.get("faces", []) if f.get("enhancement") is not None]
    if not isinstance(arrays, dict):
        if enhanced:
            return ["planes file is one array, the stream has face textures (write .npz)"]
        if len(stream["layers"]) != 1:
            return ["planes file is one array, the stream has several layers"]
        arrays = {stream["layers"][0]["layer_id"]: arrays}
    reasons = []
    for face in enhanced:
        key = face_keys(face["face_id"])[2]
        if key not in arrays:
            reasons.append(f"face {face['face_id']}: no {key}")
        else:
            why, note = check_texture(arrays[key], face)
            reasons += why
            if note and notes is not None:
                notes.append(note)
    for layer in stream["layers"]:
        lid, pics = layer["layer_id"], layer["pictures"]
        array = arrays.get(lid)
        if array is None:
            reasons.append(f"layer {lid}: no planes")
            continue
        shape = (pics["count"], pics["height"], pics["width"])
        if array.shape != shape or array.dtype.kind not in "ui":
            reasons.append(f"layer {lid}: planes {array.dtype}{list(array.shape)}, expected "
                           f"integers of shape {list(shape)}")
            continue
        if array.size and (array.min() < 0 or array.max() >= 1 << layer["bit_depth"]):
            reasons.append(f"layer {lid}: samples outside 0..2^{layer['bit_depth']}-1")
            continue
        md5 = planes_md5_hex(array, layer["bit_depth"])
        if md5 != layer["planes_md5"]:
            reasons.append(f"layer {lid}: planes_md5 {md5}, expected {layer['planes_md5']}")
            if manifest_dir is not None and (mismatches is not None or
                                             diff_images is not None):
                _explain(_explain_planes, array, manifest_dir, stream, layer, mismatches,
                         diff_images)
    return reasons


def _explain(how, *args) -> None:
    """Run an analysis of what differs; its own failure is recorded, never raised (the
    verdict on the stream does not depend on it)."""
    mismatches = args[-2]
    try:
        how(*args)
    except Exception as exc:  # noqa: BLE001 - a decoder's output may be anything
        if mismatches is not None:
            mismatches.append({"layer_id": args[-3]["layer_id"], "kind": "error",
                               "pattern": "unrecognised", "differing": None, "total": None,
                               "detail": f"the analysis failed: {type(exc).__name__}: "
                                         f"{exc}"})


def _record(layer_id: str, found: dict | None, mismatches: list | None) -> dict | None:
    """A mismatch analysis as the record of its layer (appended to ``mismatches``)."""
    if found is None:
        return None
    found = {"layer_id": layer_id, **found}
    if mismatches is not None:
        mismatches.append(found)
    return found


def _explain_planes(array, manifest_dir, stream, layer, mismatches, diff_images) -> None:
    """The mismatch record of a layer whose pictures differ from those of the reference
    decoder (which decodes the stream here), and its difference images (one per picture
    that differs, at most 16)."""
    from . import mismatch
    from .reference_decoder import decode_planes
    lid = layer["layer_id"]
    index, header = _layer_headers(manifest_dir, stream)[lid]
    ref = decode_planes((manifest_dir / stream["file"]).read_bytes())[lid]
    found = _record(lid, mismatch.analyse_planes(array, ref, header), mismatches)
    if found is None:
        return
    if diff_images is not None and array.shape == ref.shape:
        from .. import pictures
        paths = []
        for p in [int(k) for k in found.get("per_picture", {})][:16]:
            path = diff_images / (f"{stream['name']}_layer{index}_{pictures.safe_name(lid)}"
                                  f"_picture{p}.png")
            pictures.write_difference(path, ref[p], array[p])
            paths.append(str(path))
        found["diff_images"] = paths


def check_output(path: Path, manifest_dir: Path, stream: dict,
                 notes: list[str] | None = None, mismatches: list[dict] | None = None,
                 diff_images: Path | None = None) -> tuple[list[str], str]:
    """Tier 2: the decoder's tensors and faces against the reference; (failure reasons,
    tier); notes on allowed differences go to ``notes``, the analysis of each layer that
    differs (refcodec.conformance.mismatch) to ``mismatches``, and its reference | decoded |
    difference image to ``diff_images``."""
    if not path.is_file():
        return ["wrote no output file"], ""
    try:
        arrays = _load_arrays(path, _expected_sizes(stream, planes=False))
    except OutputTooLarge as exc:
        return [f"output file refused: {exc}"], ""
    except Exception as exc:  # noqa: BLE001
        return [f"output file unreadable: {exc}"], ""
    faces = stream.get("faces", [])
    if not isinstance(arrays, dict):
        if faces:
            return ["output is one array, the stream has faces (write .npz)"], ""
        if len(stream["layers"]) != 1:
            return ["output is one array, the stream has several layers (write .npz)"], ""
        arrays = {stream["layers"][0]["layer_id"]: arrays}
    reasons, tiers = [], []
    wanted = [layer["layer_id"] for layer in stream["layers"]]
    for face in faces:
        wanted += face_keys(face["face_id"]) if face.get("enhancement") else \
            face_keys(face["face_id"])[:1]
    extra = sorted(set(arrays) - set(wanted))
    if extra:
        reasons.append(f"unexpected arrays {', '.join(extra)}")
    if faces:
        why, face_tiers, face_notes = check_faces(arrays, reference_faces(manifest_dir, stream),
                                                  faces)
        reasons += why
        tiers += face_tiers
        if notes is not None:
            notes += face_notes
    for layer in stream["layers"]:
        lid = layer["layer_id"]
        if lid not in arrays:
            reasons.append(f"layer {lid}: missing")
            continue
        got, note = as_source_dtype(arrays[lid], layer["dtype"])
        if got is None:
            reasons.append(f"layer {lid}: {note}")
            continue
        ref = reference_tensor(manifest_dir, stream, layer)
        passed, detail = compare_tensor(got, ref, layer)
        if passed:
            tiers.append(detail)
        else:
            reasons.append(f"layer {lid}: {detail}")
            if mismatches is not None or diff_images is not None:
                _explain(_explain_tensor, got, ref, manifest_dir, stream, layer, mismatches,
                         diff_images)
    tier = "" if reasons else ("tolerance" if "tolerance" in tiers else "exact")
    return reasons, tier


def _layer_headers(manifest_dir: Path, stream: dict) -> dict:
    """{layer_id: (index, LayerHeader)} of a stream of the suite (read_headers)."""
    from ..codec import read_headers
    parsed = read_headers((manifest_dir / stream["file"]).read_bytes())
    return {layer.header.layer_id: (layer.index, layer.header) for layer in parsed.layers}


def _explain_tensor(got, ref, manifest_dir, stream, layer, mismatches, diff_images) -> None:
    """The mismatch record of a layer whose tensor differs, and its difference image."""
    from . import mismatch
    lid = layer["layer_id"]
    index, header = _layer_headers(manifest_dir, stream)[lid]
    found = _record(lid, mismatch.analyse_tensor(got, ref, header), mismatches)
    if found is None:
        return
    if diff_images is not None:
        shown = got
        if got.shape != ref.shape and got.ndim == 4 and got.size == ref.size:
            for axes in ((0, 3, 1, 2), (0, 2, 3, 1)):
                if got.transpose(axes).shape == ref.shape:
                    shown = got.transpose(axes)
                    break
        if shown.shape == ref.shape:
            nchw = (lambda a: a.transpose(0, 3, 1, 2)) if layer["layout"] == "NHWC" else \
                (lambda a: a)
            n, c, h, w = nchw(ref).shape
            maps = [np.asarray(nchw(a), dtype=np.float64).reshape(n * c, h, w)
                    for a in (ref, shown)]
            from .. import pictures
            path = diff_images / f"{stream['name']}_layer{index}_"\
                                 f"{pictures.safe_name(lid)}.png"
            pictures.write_difference(path, pictures.mosaic(maps[0]),
                                      pictures.mosaic(maps[1]))
            found["diff_image"] = str(path)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_stream(stream: dict, manifest_dir: Path, decoder: Decoder, *, outputs: bool,
               planes: bool, diff_images: Path | None = None) -> dict:
    """Run the decoder on one stream of a manifest; the result record (with the analysis
    of what differs, ``mismatches``, when a valid stream fails; its difference images in
    ``diff_images``)."""
    result = {"name": stream["name"], "valid": stream["valid"], "status": "FAIL",
              "tier": None, "reasons": []}
    path = manifest_dir / stream["file"]
    if not path.is_file():
        result["reasons"].append(f"stream file {stream['file']} missing")
        return result
    path = path.resolve()       # run_suite checked that it stays inside the suite directory
    if hashlib.sha256(path.read_bytes()).hexdigest() != stream["sha256"]:
        result["reasons"].append(f"stream file {stream['file']} does not match its sha256")
        return result
    with _stream_folder() as tmp:
        out = Path(tmp) / f"{stream['name']}.npz" if outputs else None
        pl = Path(tmp) / f"{stream['name']}.planes.npz" if planes else None
        run = decoder(path, out, pl)
        result["seconds"] = round(run.seconds, 3)
        result["exit_code"] = run.returncode
        result["stderr"] = _last_line(run.stderr)
        reasons = result["reasons"]
        if run.returncode is None:
            reasons.append(run.stderr or "timed out")
        elif stream["valid"]:
            if run.returncode != 0:
                reasons.append(f"exit status {run.returncode} on a valid stream: "
                               f"{result['stderr']}")
            else:
                notes, mismatches = [], []
                if out is not None:
                    why, tier = check_output(out, manifest_dir, stream, notes, mismatches,
                                             diff_images)
                    reasons += why
                    result["tier"] = tier or None
                if pl is not None:
                    reasons += check_planes(pl, stream, notes, mismatches, diff_images,
                                            manifest_dir)
                if notes:
                    result["notes"] = sorted(set(notes))
                if mismatches:
                    result["mismatches"] = mismatches
        else:
            result["refused"] = run.returncode != 0
            # only a decoder of face images refuses it: a decoder of planes may accept it
            may_accept = stream.get("refused_by") == "image" and not outputs
            if run.returncode == 0 and not may_accept:
                reasons.append(f"exit status 0 on an invalid stream (expected a refusal, "
                               f"clause {stream['expected_clause']})")
            elif run.returncode < 0:
                reasons.append(f"killed by signal {-run.returncode} instead of refusing "
                               f"the stream")
            left = [p.name for p in (out, pl) if p is not None and p.exists()]
            if left and not (may_accept and run.returncode == 0):
                reasons.append(f"left output behind: {', '.join(left)}")
            # any requirement the stream breaks may be reported (spec clause 12.4)
            accepted = [stream["expected_clause"]] + [
                c for c in stream.get("verify_clauses", []) + stream.get("clauses", [])
                if c != stream["expected_clause"]]
            said = [c for c in dict.fromkeys(accepted) if f"[{c}]" in run.stderr]
            result["reported_clause"] = bool(said)
            if said:
                result["clause"] = said[0]
    if not result["reasons"]:
        result["status"] = "PASS"
    return result


@contextlib.contextmanager
def _stream_folder():
    """A temporary folder for one stream's outputs, removed on leaving (and by
    ``remove_temporary`` when the run is interrupted)."""
    tmp = tempfile.mkdtemp(prefix="vfc-conformance-")
    _temporary.add(tmp)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _temporary.discard(tmp)


def _check_inside(manifest_path: Path, streams: Sequence[dict]) -> None:
    """Refuse a suite whose stream or reference file (a symbolic link, or under one)
    resolves outside the suite directory."""
    root = manifest_path.parent.resolve()
    for stream in streams:
        for name in (stream["file"], stream.get("reference")):
            if name is None or not (manifest_path.parent / name).exists():
                continue
            target = (manifest_path.parent / name).resolve()
            if not target.is_relative_to(root):
                raise SuiteError(f"{manifest_path}: stream {stream['name']}: {name} resolves "
                                 f"outside the suite directory")


def run_suite(manifest_path: Path, decoder: Decoder, *, outputs: bool = True,
              planes: bool = False, streams: Sequence[str] = (), jobs: int = 1,
              progress: Callable[[dict, int, int], None] | None = None,
              diff_images: Path | None = None) -> dict:
    """Run ``decoder`` on every stream of a manifest (or those whose name matches one of
    the fnmatch patterns ``streams``); the results record (see conformance/README.md).
    ``progress(result, done, total)`` is called as each stream finishes (from the worker
    thread).  ``diff_images``: an existing folder for the reference | decoded |
    difference images of each failing valid stream."""
    manifest_path = Path(manifest_path)
    manifest = load_manifest(manifest_path)
    selected = [s for s in manifest["streams"]
                if not streams or any(fnmatch.fnmatchcase(s["name"], p) for p in streams)]
    if not selected:
        raise SuiteError(f"no stream of {manifest_path} matches {', '.join(streams)}")
    if not outputs and not planes:
        raise SuiteError("the decoder shall write {output} or {planes}")
    _check_inside(manifest_path, selected)
    started = time.perf_counter()
    lock, done = threading.Lock(), [0]

    def one(stream):
        if _cancelled.is_set():
            return {"name": stream["name"], "valid": stream["valid"], "status": "FAIL",
                    "tier": None, "reasons": ["interrupted"]}
        result = run_stream(stream, manifest_path.parent, decoder, outputs=outputs,
                            planes=planes, diff_images=diff_images)
        if progress:
            with lock:
                done[0] += 1
                progress(result, done[0], len(selected))
        return result
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        results = list(pool.map(one, selected))
    finally:
        # on an error or an interruption the streams not started are not run
        pool.shutdown(wait=True, cancel_futures=True)
    summary = {"total": len(results),
               "passed": sum(r["status"] == "PASS" for r in results),
               "failed": sum(r["status"] != "PASS" for r in results)}
    for kind, valid in (("valid", True), ("invalid", False)):
        subset = [r for r in results if r["valid"] == valid]
        summary[kind] = {"total": len(subset),
                         "passed": sum(r["status"] == "PASS" for r in subset)}
    summary["valid"]["exact"] = sum(r["tier"] == "exact" for r in results)
    summary["valid"]["tolerance"] = sum(r["tier"] == "tolerance" for r in results)
    return {"schema_version": SCHEMA_VERSION, "suite": manifest["suite"],
            "manifest": str(manifest_path), "format_version": manifest["format_version"],
            "checks": {"tensors": outputs, "planes": planes},
            "seconds": round(time.perf_counter() - started, 3),
            "summary": summary, "results": results}


#: Terminal escape sequences (CSI, OSC/DCS/APC/PM/SOS strings, two-byte ESC sequences) and
#: the control characters (C0, DEL, C1) a decoder's message or a stream name may carry.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]?|\x1b[\]PX^_].*?(?:\x07|\x1b\\|$)"
                      r"|\x1b[ -/]*[0-~]?|[\x00-\x1f\x7f-\x9f]", re.S)


def printable(text: str) -> str:
    """``text`` without terminal control: what the runner prints of a decoder's output."""
    return _ESCAPES.sub("", str(text))


def progress_line(result: dict, done: int, total: int) -> str:
    """The line printed as a stream finishes: ``[12/172] name PASS (0.4 s)``."""
    line = f"[{done}/{total}] {printable(result['name'])} {result['status']}"
    if "seconds" in result:
        line += f" ({result['seconds']:.1f} s)"
    if result["status"] != "PASS" and result["reasons"]:
        line += ": " + printable(result["reasons"][0])[:200]
    return line


def format_results(results: dict, decoder_name: str) -> str:
    """The summary table printed by ``refcodec conformance run``."""
    rows = [("Stream", "Valid", "Result", "Details")]
    for r in results["results"]:
        if r["status"] == "PASS":
            detail = (f"tier 2 {r['tier']}" if r["valid"] and r["tier"] else
                      "tier 1" if r["valid"] else "refused")
            if r.get("notes"):
                detail += "; " + "; ".join(r["notes"])
            if not r["valid"] and not r.get("refused", True):
                detail = "accepted (refused only by a decoder of face images)"
            elif not r["valid"] and not r.get("reported_clause", True):
                detail += " (clause not in the message)"
        else:
            detail = "; ".join(r["reasons"])
            if r.get("mismatches"):
                from .mismatch import summary
                detail += "; " + "; ".join(summary(m["layer_id"], m)
                                           for m in r["mismatches"])
        rows.append((printable(r["name"]), "yes" if r["valid"] else "no", r["status"],
                     printable(detail)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [printable(f"Suite {results['suite']} (VFC {results['format_version']}), "
                       f"decoder: {decoder_name}"), ""]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  "
                     + row[3])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    s = results["summary"]
    lines += ["", f"{s['passed']}/{s['total']} passed: valid {s['valid']['passed']}/"
                  f"{s['valid']['total']} ({s['valid']['exact']} bit-exact, "
                  f"{s['valid']['tolerance']} within the tolerance of clause 12.3), invalid "
                  f"{s['invalid']['passed']}/{s['invalid']['total']} refused; "
                  f"{results['seconds']:.1f} s"]
    return "\n".join(lines)
