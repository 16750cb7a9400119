"""HEVC through PyAV: libx265 encoder (informative) and FFmpeg's HEVC decoder.

The only module that imports av.  Facts it relies on (measured, see docs/hevc-notes):

* ``ipratio=1`` makes the slice QP of intra pictures equal the requested QP;
* ``info=0`` stops libx265 writing its version/options SEI into every picture;
* ``pools=1:frame-threads=1`` gives byte-identical output run to run on one build;
* with ``keyint=1`` every access unit repeats VPS/SPS/PPS: the repeats are dropped;
* ``hash=1`` makes libx265 write the MD5 of each reconstructed picture in a decoded picture
  hash SEI: the encoder takes sample_md5 from there (no decode) and drops the SEI;
* the parser must be flushed (``parse(None)``) or the last access unit is lost silently;
* an unsupported stream decodes to zero frames without an exception, so the frame count,
  size and pixel format are always checked.
"""

from __future__ import annotations

import contextlib
import threading
from fractions import Fraction

import av
import av.logging
import numpy as np

from ..errors import BackendError, ConformanceViolation
from . import feed
from .annexb import repack_access_units

PIX_FMT = {8: "gray", 10: "gray10le", 12: "gray12le"}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
           "slower", "veryslow", "placebo")


def x265_params(qp: int, lossless: bool, extra: str = "") -> str:
    """The x265-params string of the informative encoder (Annex A.3); ``extra`` (libx265
    options as ``name=value:name=value``) comes last, so it overrides the defaults (the
    conformance suite's inter-coded streams: ``keyint=16:bframes=3``, ...)."""
    params = ["keyint=1", "min-keyint=1", "scenecut=0", "bframes=0", f"qp={qp}", "ipratio=1",
              "info=0", "pools=1", "frame-threads=1", "min-cu-size=8", "hash=1", "log-level=none"]
    if lossless:
        params.append("lossless=1")
    if extra:
        params.append(extra)
    return ":".join(params)


#: Presets whose residual quadtree is 4 levels deep (tu-intra-depth / tu-inter-depth 4).
DEEP_TU_PRESETS = ("placebo",)


def small_picture_params(preset: str, height: int, width: int) -> str:
    """libx265 options a preset needs for small pictures: libx265 lowers the CTU to 16x16
    when a side is below 32 samples, and a 16x16 CTU allows at most 3 levels of residual
    quadtree (log2(16) - log2(4) + 1); placebo asks for 4, and libx265 then refused to open
    ("QuadtreeTUMaxDepthInter must be less than or equal to ..."), so the depth is capped
    at 3 there.  Empty for every other case (their streams are unchanged)."""
    if preset in DEEP_TU_PRESETS and min(height, width) < 32:
        return "tu-intra-depth=3:tu-inter-depth=3"
    return ""


def encode_access_units(pictures: np.ndarray, bit_depth: int, qp: int, lossless: bool,
                        preset: str, extra: str = "") -> list[bytes]:
    """Bare libx265: one Annex-B access unit per picture, as libx265 writes them."""
    if pictures.ndim != 3:
        raise ValueError("pictures shall be (P, H, W)")
    count, height, width = pictures.shape
    small = small_picture_params(preset, height, width)
    extra = ":".join(p for p in (small, extra) if p)
    fmt = PIX_FMT[bit_depth]
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    try:
        ctx = av.CodecContext.create("libx265", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, fmt
        ctx.time_base = Fraction(1, 25)
        ctx.options = {"preset": preset, "x265-params": x265_params(qp, lossless, extra)}
        ctx.open()
        units: list[bytes] = []
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pictures[i], dtype=dtype),
                                               format=fmt)
            frame.pts = i
            units.extend(bytes(p) for p in ctx.encode(frame))
        units.extend(bytes(p) for p in ctx.encode(None))
    except av.error.FFmpegError as exc:
        raise BackendError(f"libx265 failed on {count} pictures of {width}x{height} at "
                           f"{bit_depth}-bit: {exc}") from exc
    if len(units) != count:
        raise BackendError(f"libx265 returned {len(units)} access units for {count} pictures")
    return units


#: Frame threading pays off from about this many samples per picture (measured with
#: tools/bench_codec.py on 2 cores, frames taken in batches: 16x16 and 32x32 pictures
#: decode slower with it, 56x56 about a quarter faster, 224x224 a third faster).
FRAME_THREADS_MIN_SAMPLES = 56 * 56


def use_frame_threads(num_pictures: int, height: int, width: int) -> bool:
    """Whether a payload of ``num_pictures`` pictures of height x width is decoded with
    FFmpeg's frame threads: from FRAME_THREADS_MIN_SAMPLES samples per picture, and only
    for more than one picture (frame threads decode different pictures at once; starting
    them for a single 224x280 picture cost 1.1 ms, about a quarter of its decode)."""
    return num_pictures > 1 and height * width >= FRAME_THREADS_MIN_SAMPLES


#: decode_pictures takes the decoded frames in batches of this many: with frame threads,
#: copying each frame as it comes keeps the thread that feeds FFmpeg busy while FFmpeg's
#: own threads want the two cores (measured: 56x56 pictures decode up to 15% slower).
FRAME_BATCH = 8


#: FFmpeg's frame threads when a layer's pictures are large enough; None lets FFmpeg pick
#: the count (one per CPU).  Slice threads are never used: FFmpeg's slice threads decode
#: WPP payloads with one dependent slice segment per CTU row wrongly (kvazaar's
#: ``--wpp --slices wpp``; measured on shared/interop's kvz_wpp_slices_small_mono: all 8
#: pictures differ from HM's), so a decoder that used them would refuse a conforming stream
#: depending on the machine's CPU count.
FRAME_THREAD_COUNT: int | None = None
#: FFmpeg's error detection: a payload FFmpeg finds broken (a missing reference picture, a
#: slice that does not parse) is an error, not a picture it silently drops or conceals.
DECODER_OPTIONS = {"err_detect": "explode"}


def decoder_context(frame_threads: bool = False, thread_count: int | None = None):
    """An FFmpeg HEVC decoder: frame threads (``thread_count`` of them, default
    FRAME_THREAD_COUNT) or one thread, never slice threads; error detection on."""
    ctx = av.CodecContext.create("hevc", "r")
    if frame_threads:
        ctx.thread_type = "FRAME"
        count = FRAME_THREAD_COUNT if thread_count is None else thread_count
        ctx.thread_count = 0 if count is None else count
    else:
        ctx.thread_type = "NONE"
        ctx.thread_count = 1
    ctx.options = dict(DECODER_OPTIONS)
    return ctx


#: iter_frames gives FFmpeg's parser this many payload bytes at a time: only one chunk's
#: parsed packets are alive, not a second copy of the whole payload.
PARSE_CHUNK = 1 << 20


def iter_frames(payload: bytes, frame_threads: bool = False, thread_count: int | None = None):
    """Bare FFmpeg: the frames of an Annex-B stream as they are decoded (parser flushed),
    its parameter sets fed in the order FFmpeg needs (refcodec.hevc.feed), PARSE_CHUNK bytes
    at a time."""
    ctx = decoder_context(frame_threads, thread_count)
    data = feed.in_decoder_order(payload)
    for start in range(0, len(data), PARSE_CHUNK):
        for packet in ctx.parse(data[start:start + PARSE_CHUNK]):
            yield from ctx.decode(packet)
    for packet in ctx.parse(None):
        yield from ctx.decode(packet)
    yield from ctx.decode(None)


def decode_frames(payload: bytes, frame_threads: bool = False) -> list:
    """Bare FFmpeg: every frame of an Annex-B stream."""
    return list(iter_frames(payload, frame_threads))


def batches(frames, size: int):
    """The items of ``frames`` in lists of ``size`` (the last one shorter).  When ``frames``
    raises, the items taken before come first, as a last list, and the exception follows
    when the next list is asked for: a caller that checks items in order sees a problem of
    an earlier item before a later decoding error, as it would one item at a time."""
    held = []
    try:
        for item in frames:
            held.append(item)
            if len(held) == size:
                yield held
                held = []
    except Exception:
        if held:
            yield held
        raise
    if held:
        yield held


def copy_samples(frame, dest: np.ndarray) -> None:
    """dest[...] = frame.to_ndarray() for a gray frame of dest's size (uint8 at 8-bit, uint16
    for the little-endian gray10le/gray12le), read straight from the plane's buffer: the
    per-frame work of to_ndarray (format lookup, dtype, view) is most of the copy's cost for
    small pictures."""
    plane = frame.planes[0]
    line = plane.line_size
    height, width = dest.shape
    itemsize = dest.itemsize
    if line < width * itemsize or plane.buffer_size < line * height:   # never from FFmpeg
        dest[...] = frame.to_ndarray()
        return
    dest[...] = np.ndarray((height, width), _LE_SAMPLES[itemsize], plane, 0, (line, itemsize))


_LE_SAMPLES = {1: np.dtype(np.uint8), 2: np.dtype("<u2")}


_log_lock = threading.Lock()
_log_users = 0
_log_level_before = None


@contextlib.contextmanager
def ffmpeg_log(into: list):
    """Collect FFmpeg's error messages (from every thread, frame threads included) into
    ``into`` while the block runs; nothing reaches the terminal.  FFmpeg's logging is on
    only while some decode runs (PyAV turns it off by default)."""
    global _log_users, _log_level_before
    with _log_lock:
        if _log_users == 0:
            _log_level_before = av.logging.get_level()
            if _log_level_before is None or _log_level_before < av.logging.ERROR:
                av.logging.set_level(av.logging.ERROR)
        _log_users += 1
    try:
        with av.logging.Capture(local=False) as captured:
            yield
    finally:
        into.extend(captured)
        with _log_lock:
            _log_users -= 1
            if _log_users == 0:
                av.logging.set_level(_log_level_before)


def ffmpeg_reason(exc: Exception, log: list) -> str:
    """FFmpeg's own words for a decoding error: its last distinct error messages, else
    the exception."""
    messages = []
    for level, name, message in log:
        text = " ".join(str(message).split())
        if name:
            text = f"[{name}] {text}"
        if level <= av.logging.ERROR and text and text not in messages:
            messages.append(text)
    if not messages:
        return str(getattr(exc, "strerror", None) or exc)
    return "; ".join(messages[-3:])


class PyAVBackend:
    """libx265 (encoder) and FFmpeg (decoder) through PyAV.  ``x265_params``: libx265
    options added to the informative encoder's (x265_params), for inter coding, slices and
    the like; with them the picture MD5s are put in output order (clause 9.2)."""

    name = "pyav"

    def __init__(self, x265_params: str = ""):
        if any(c in x265_params for c in "\n\r\0"):
            raise ValueError("x265_params shall be one line of name=value:name=value")
        self.x265_params = x265_params

    def with_x265_params(self, extra: str) -> "PyAVBackend":
        """This backend with ``extra`` libx265 options after its own (a layer's
        EncoderConfig.x265_params)."""
        return PyAVBackend(":".join(p for p in (self.x265_params, extra) if p))

    def encode_pictures(self, pictures: np.ndarray, bit_depth: int, qp: int, lossless: bool,
                        preset: str = "medium") -> tuple[bytes, list[bytes]]:
        units = encode_access_units(pictures, bit_depth, qp, lossless, preset,
                                    self.x265_params)
        payload, hashes = repack_access_units(units)
        if any(h is None for h in hashes):
            raise BackendError("libx265 wrote no decoded picture hash SEI (hash=1) for "
                               f"{sum(h is None for h in hashes)} of {len(hashes)} pictures")
        if self.x265_params:
            # access units come in decoding order; with B pictures (or anything else that
            # reorders) the output order differs, and sample_md5 follows the output order
            from . import slices
            order = [p.decode_index for p in slices.output_order(payload)]
            if sorted(order) != list(range(len(hashes))):
                raise BackendError(f"libx265's payload outputs {len(order)} of its "
                                   f"{len(hashes)} pictures")
            hashes = [hashes[i] for i in order]
        return payload, hashes

    def decode_pictures(self, payload: bytes, num_pictures: int, height: int, width: int,
                        bit_depth: int, *, offset: int | None = None,
                        path: str = "hevc_payload") -> np.ndarray:
        # the frames are copied into ``out`` and released a batch at a time, so the memory
        # held is the planes (bounded by the level, clause 11.2) plus FRAME_BATCH frames and
        # FFmpeg's few frames in flight
        out = np.empty((num_pictures, height, width),
                       dtype=np.uint8 if bit_depth == 8 else np.uint16)
        for _ in self._decode(payload, num_pictures, height, width, bit_depth, offset, path,
                              lambda count, frame: copy_samples(frame, out[count])):
            pass
        return out

    def iter_pictures(self, payload: bytes, num_pictures: int, height: int, width: int,
                      bit_depth: int, *, offset: int | None = None,
                      path: str = "hevc_payload", batch: int = FRAME_BATCH):
        """decode_pictures a batch at a time: yields (first, planes), ``planes`` the
        (k, H, W) pictures first .. first + k - 1 in output order, a view of one buffer that
        the next batch overwrites (use it before asking for the next).  The checks are those
        of decode_pictures, made as the frames arrive: a payload with too few pictures is
        refused after its last batch."""
        batch = -(-max(1, batch) // FRAME_BATCH) * FRAME_BATCH   # whole batches of frames
        buffer = np.empty((max(1, min(batch, num_pictures)), height, width),
                          dtype=np.uint8 if bit_depth == 8 else np.uint16)
        size = len(buffer)
        first = count = 0
        # FFmpeg's frames are copied into the buffer and released FRAME_BATCH at a time;
        # the buffer is handed out when it is full, and at the end
        for count in self._decode(payload, num_pictures, height, width, bit_depth, offset,
                                  path, lambda i, frame: copy_samples(frame, buffer[i % size])):
            if count - first == size:
                yield first, buffer
                first = count
        if count > first:
            yield first, buffer[:count - first]

    def _decode(self, payload: bytes, num_pictures: int, height: int, width: int,
                bit_depth: int, offset: int | None, path: str, place, batch: int = FRAME_BATCH):
        """Decode ``payload``, checking each frame against the layer (count, format, size):
        ``place(count, frame)`` stores picture ``count``; yields the number of pictures
        stored after each batch of at most ``batch`` frames (a multiple of ``batch`` but
        for the last)."""
        want_fmt = PIX_FMT[bit_depth]
        count = 0
        log: list = []
        try:
            frames = iter_frames(payload, use_frame_threads(num_pictures, height, width))
            with ffmpeg_log(log):
                for frames_of_batch in batches(frames, batch):
                    for frame in frames_of_batch:
                        if count == num_pictures:
                            raise ConformanceViolation(
                                f"the HEVC payload shall decode to {num_pictures} pictures, "
                                f"got more", clause="10.6", offset=offset, path=path)
                        fmt = frame.format.name
                        if fmt != want_fmt:
                            clause = "10.3" if not fmt.startswith("gray") else "10.4"
                            raise ConformanceViolation(
                                f"picture {count} decodes as {fmt}, the layer needs "
                                f"{want_fmt} (4:0:0, {bit_depth}-bit)", clause=clause,
                                offset=offset, path=path)
                        if (frame.height, frame.width) != (height, width):
                            raise ConformanceViolation(
                                f"picture {count} is {frame.width}x{frame.height}, the layer "
                                f"needs {width}x{height}", clause="10.5", offset=offset,
                                path=path)
                        place(count, frame)
                        count += 1
                    del frames_of_batch
                    yield count
        except (av.error.DecoderNotFoundError, av.error.MemoryError) as exc:
            raise BackendError(f"the HEVC decoder failed: {exc}") from exc
        except av.error.FFmpegError as exc:
            # FFmpeg reports bad HEVC data with several codes (EINVAL, EPERM, ENOSYS, ...)
            # and says in its log what it found
            raise ConformanceViolation(
                f"the HEVC payload does not decode after {count} of {num_pictures} pictures: "
                f"{ffmpeg_reason(exc, log)}", clause="10.1", offset=offset,
                path=path) from exc
        if count != num_pictures:
            raise ConformanceViolation(
                f"the HEVC payload shall decode to {num_pictures} pictures, got {count}",
                clause="10.6", offset=offset, path=path)
