"""Any HEVC encoder as a backend: an external program run from a command template.

``ExternalBackend(template)`` has the ``encode_pictures`` of refcodec.hevc.Backend (and
decodes with FFmpeg, as refcodec.hevc.pyav does).  For each call it writes the pictures to
a raw 4:0:0 file in a fresh temporary folder (the pictures in order, raster order, one byte
per sample at 8 bits, else two bytes little-endian), runs the command and reads the Annex-B
byte stream the encoder wrote.  The command is split with shlex and each argument is
formatted with the placeholders (no shell is ever used):

=================  ==========================================================
``{input}``        the raw 4:0:0 file refcodec writes
``{output}``       the Annex-B byte stream the encoder shall write
``{width}``        picture width in samples
``{height}``       picture height in samples
``{bit_depth}``    bits per sample (8, 10 or 12)
``{frames}``       number of pictures
``{qp}``           the QP
``{preset}``       the preset of encode_pictures (x265's and kvazaar's names)
``{ctu}``          the largest CTU size of 64, 32, 16 not above the picture height
                   and below its width (two CTU columns or more), else 16
=================  ==========================================================

A template without ``{input}`` and ``{output}``, with another placeholder, or that does not
split, is an EncoderInputError when the backend is made.  The process runs in its own
session with the temporary folder as working directory and stdin closed; the last
``TAIL_BYTES`` of its stdout and stderr are kept.  It is killed with its whole process
group after ``timeout`` seconds (default 600), ``ERROR_GRACE`` seconds after printing a
line that matches the template's ``error_pattern`` without exiting (the x265 3.5 command
line prints an error for a parameter it refuses, then hangs or crashes, run to run), and
when it exits (whatever it left running).  A non-zero exit (with the last line of stderr
in the message), a timeout, a missing or empty output file, output that is not an HEVC
stream of the pictures (count, size, bit depth, 4:0:0, no cropping window) or that breaks
clause 10 of the format (``check_format``) is a BackendError.  The temporary folder is
removed on every path.

The picture MD5s returned (H.265 picture_md5 of each decoded picture, in output order) are
those of the encoder's decoded picture hash SEIs, put in output order by
refcodec.hevc.slices, when every output picture has one; otherwise the payload is decoded
with FFmpeg (refcodec.hevc.pyav, which checks count, size and format) and the pictures are
hashed.  With ``cross_check`` (the default) the payload is decoded even when the SEIs are
there, and a picture whose SEI MD5 differs from FFmpeg's decoding is a BackendError: the
format's decoder would refuse the stream.  The payload is returned as the encoder wrote
it, SEIs and repeated parameter sets included.

Ready-made templates (``TEMPLATES``; the programs must be on PATH):

``x265`` (the x265 command line, 3.5): ``--input-csp i400`` with ``--input-res``,
  ``--input-depth``/``--output-depth`` (8, 10, 12 with a multilib build such as Debian's),
  ``--fps 25 --frames``; ``--preset`` first (later options override it); ``--qp`` with
  ``--ipratio 1 --pbratio 1`` so that every slice QP is the QP (constant QP, no rate
  control); all-intra: ``--keyint 1 --min-keyint 1 --no-scenecut --bframes 0``;
  ``--ctu {ctu}``: x265 refuses a picture smaller than a CTU (64 by default) and its
  smallest CTU is 16, so pictures narrower or lower than 16 samples are refused without
  running it; ``--min-cu-size 8`` (refcodec's pictures are multiples of 8, so there is no
  conformance window); ``--hash 1`` (MD5 decoded picture hash SEI); ``--no-info`` (no
  version/options SEI); deterministic output: ``--pools 1 --frame-threads 1``;
  ``--log-level error --no-progress``.  Lossless adds ``--lossless``.
  ``x265-inter``: the same with ``--keyint 16 --min-keyint 16 --bframes 3 --b-pyramid``
  (open GOP, x265's default: CRA pictures with RASL pictures; pictures are output in
  another order than they are decoded).  Measured with Debian's x265 3.5: inter pictures
  one CTU wide (16x16 .. 16x136 with CTU 16, 32x32 and 32x40 with CTU 32, 64x64 and 64x72
  with CTU 64) decode, with FFmpeg and libde265 alike, otherwise than x265's own hash SEIs
  (and, lossless, otherwise than the source): hence ``{ctu}`` keeps two CTU columns and
  ``x265-inter`` refuses pictures 16 samples wide.  All-intra pictures are not affected.
``kvazaar`` (2.x): ``--input-format P400 --input-res WxH --input-bitdepth``, ``-n``,
  ``--input-fps 25``, ``--preset`` first, ``--qp``, all-intra ``-p 1`` (intra period 1),
  ``--hash md5`` (kvazaar's default hash is a checksum, which gives no MD5),
  ``--no-info``, deterministic ``--threads 0 --owf 0``, ``--no-psnr``; lossless adds
  ``--lossless``; ``kvazaar-inter`` uses ``--gop 8 -p 32``.  kvazaar signals
  general_profile_idc 1 (Main) for 4:0:0, which H.265 does not allow (clause 10.2 refuses
  it), so these templates rewrite the profile_tier_level() of each VPS and SPS to the
  format range extensions Monochrome profile of the bit depth
  (``rewrite_monochrome_profile``; nothing else changes; the interop ``*_mono`` payloads
  are kvazaar's with exactly this rewrite).  kvazaar's output bit depth is fixed when it
  is compiled (8 by default): a 10-bit layer needs a kvazaar built with KVZ_BIT_DEPTH=10,
  else the bit depth check refuses the stream.
``hm`` (HM's TAppEncoderStatic, 16.x): no configuration file, the minimal configuration
  on the command line: ``-i -b -wdt -hgt -f -fr 25``,
  ``--InputBitDepth/--InternalBitDepth/--OutputBitDepth``, ``--InputChromaFormat=400
  --ChromaFormatIDC=400``, ``--Profile=main-RExt`` (HM then signals the Monochrome
  profile of the bit depth) ``--Level=6.2``, CTU 64 and CU 8 to 64
  (``--MaxCUWidth=64 --MaxCUHeight=64 --MaxPartitionDepth=4``), transform blocks 4 to 32
  (``--QuadtreeTULog2MaxSize=5 --QuadtreeTULog2MinSize=2 --QuadtreeTUMaxDepthIntra=3
  --QuadtreeTUMaxDepthInter=3``), ``-q``, all-intra ``--IntraPeriod=1 --GOPSize=1`` (HM
  makes the one GOP entry itself), ``--SEIDecodedPictureHash=1`` (MD5).  HM writes
  conformance_window_flag 1 with four zero offsets, which format 1.2 allows.  Lossless
  adds ``--TransquantBypassEnable=1 --CUTransquantBypassFlagForce=1 --CostMode=lossless``
  with implicit RDPCM and transform-skip rotation off (clause 10.7).  ``hm-inter``:
  low-delay P, one GOP entry (``--IntraPeriod=-1 --GOPSize=1`` and ``--Frame1`` with QP
  offset 0 and the previous picture as reference, in HM 16.x's GOP entry syntax with the
  QPOffsetModel fields).  HM is not installed here: the HM templates follow the command
  lines of shared/interop's cases.json but have not been run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import string
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import BackendError, ConformanceViolation, EncoderInputError
from ..processes import kill_group
from . import params, slices
from .annexb import (SPS_NUT, VPS_NUT, emulation_prevention, nal_unit_type, planes_md5, rbsp,
                     split_nal_units_with_offsets)

PLACEHOLDERS = ("input", "output", "width", "height", "bit_depth", "frames", "qp", "preset",
                "ctu")
REQUIRED = ("input", "output")
#: The bytes of the encoder's stdout and stderr that are kept (the last ones).
TAIL_BYTES = 64 * 1024
DEFAULT_TIMEOUT = 600.0
#: Seconds an encoder may go on running after printing a line matching its error_pattern.
ERROR_GRACE = 5.0
#: How often a running encoder is looked at (seconds).
POLL = 0.1
BIT_DEPTHS = (8, 10, 12)
INPUT_NAME = "pictures.yuv"
OUTPUT_NAME = "payload.hevc"


@dataclasses.dataclass(frozen=True)
class EncoderTemplate:
    """A ready-made encoder: its command template, the template for lossless coding (None:
    the encoder has no lossless mode here), whether its profile_tier_level() needs
    ``rewrite_monochrome_profile``, the smallest picture width and height it codes right,
    and a regular expression matching the error lines it prints on stderr."""

    command: str
    lossless: str | None = None
    rewrite_profile: bool = False
    min_width: int = 1
    min_height: int = 1
    error_pattern: str | None = None


_X265 = ("x265 --preset {preset} --input {input} --input-res {width}x{height} "
         "--input-csp i400 --input-depth {bit_depth} --output-depth {bit_depth} --fps 25 "
         "--frames {frames} --qp {qp} --ipratio 1 --pbratio 1 %s --ctu {ctu} --min-cu-size 8 "
         "--hash 1 --no-info --pools 1 --frame-threads 1 --log-level error --no-progress "
         "-o {output}")
_X265_INTRA = "--keyint 1 --min-keyint 1 --no-scenecut --bframes 0"
_X265_INTER = "--keyint 16 --min-keyint 16 --no-scenecut --bframes 3 --b-pyramid"

_KVAZAAR = ("kvazaar --preset {preset} -i {input} --input-res {width}x{height} "
            "--input-format P400 --input-bitdepth {bit_depth} --input-fps 25 -n {frames} "
            "--qp {qp} %s --hash md5 --no-info --threads 0 --owf 0 --no-psnr -o {output}")

_HM = ("TAppEncoderStatic -i {input} -b {output} -wdt {width} -hgt {height} -f {frames} "
       "-fr 25 --InputBitDepth={bit_depth} --InternalBitDepth={bit_depth} "
       "--OutputBitDepth={bit_depth} --InputChromaFormat=400 --ChromaFormatIDC=400 "
       "--Profile=main-RExt --Level=6.2 --MaxCUWidth=64 --MaxCUHeight=64 "
       "--MaxPartitionDepth=4 --QuadtreeTULog2MaxSize=5 --QuadtreeTULog2MinSize=2 "
       "--QuadtreeTUMaxDepthIntra=3 --QuadtreeTUMaxDepthInter=3 -q {qp} %s "
       "--SEIDecodedPictureHash=1")
_HM_INTRA = "--IntraPeriod=1 --GOPSize=1"
_HM_INTER = "--IntraPeriod=-1 --DecodingRefreshType=0 --GOPSize=1 '--Frame1=P 1 0 0 0 0 0 " \
            "1.0 0 0 0 1 1 -1 0'"
_HM_LOSSLESS = ("--TransquantBypassEnable=1 --CUTransquantBypassFlagForce=1 "
                "--CostMode=lossless --ImplicitResidualDPCM=0 --ResidualRotation=0")


def _with(command: str, extra: str) -> str:
    return command.replace(" -o {output}", f" {extra} -o {{output}}") if "-o {output}" in \
        command else f"{command} {extra}"


_X265_ERROR = r"^x265 \[error\]:"
TEMPLATES: dict[str, EncoderTemplate] = {
    "x265": EncoderTemplate(_X265 % _X265_INTRA, _with(_X265 % _X265_INTRA, "--lossless"),
                            min_width=16, min_height=16, error_pattern=_X265_ERROR),
    # pictures one CTU (16) wide: x265 3.5's inter pictures decode otherwise than its hashes
    "x265-inter": EncoderTemplate(_X265 % _X265_INTER, _with(_X265 % _X265_INTER,
                                                             "--lossless"),
                                  min_width=17, min_height=16, error_pattern=_X265_ERROR),
    "kvazaar": EncoderTemplate(_KVAZAAR % "-p 1", _with(_KVAZAAR % "-p 1", "--lossless"),
                               rewrite_profile=True),
    "kvazaar-inter": EncoderTemplate(_KVAZAAR % "--gop 8 -p 32",
                                     _with(_KVAZAAR % "--gop 8 -p 32", "--lossless"),
                                     rewrite_profile=True),
    "hm": EncoderTemplate(_HM % _HM_INTRA, f"{_HM % _HM_INTRA} {_HM_LOSSLESS}"),
    "hm-inter": EncoderTemplate(_HM % _HM_INTER, f"{_HM % _HM_INTER} {_HM_LOSSLESS}"),
}


# ---- templates ----


def parse_template(template: str, what: str = "the encoder command") -> list[str]:
    """The arguments of a command template, checked: it splits with shlex, names only
    PLACEHOLDERS (plain names, no conversions or attributes) and has {input} and
    {output}.  Raises EncoderInputError."""
    if not isinstance(template, str):
        raise EncoderInputError(f"{what} shall be a string, got {type(template).__name__}")
    try:
        argv = shlex.split(template)
    except ValueError as exc:
        raise EncoderInputError(f"{what} does not split into arguments: {exc}") from None
    if not argv:
        raise EncoderInputError(f"{what} is empty")
    found: set[str] = set()
    for arg in argv:
        try:
            fields = list(string.Formatter().parse(arg))
        except ValueError as exc:
            raise EncoderInputError(f"{what}: argument {arg!r}: {exc} (write a literal brace "
                                    f"as {{{{ or }}}})") from None
        for _, name, spec, conversion in fields:
            if name is None:
                continue
            if name not in PLACEHOLDERS or conversion or (spec and "{" in spec):
                shown = "{" + name + (f"!{conversion}" if conversion else "") + \
                    (f":{spec}" if spec else "") + "}"
                raise EncoderInputError(
                    f"{what}: unknown placeholder {shown}; the placeholders are "
                    f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
            found.add(name)
    missing = [p for p in REQUIRED if p not in found]
    if missing:
        raise EncoderInputError(f"{what} has no {' and no '.join('{' + p + '}' for p in missing)}"
                                f" placeholder")
    return argv


# ---- running the encoder ----


class _Tail(threading.Thread):
    """Reads a pipe to its end, keeping the last TAIL_BYTES; ``matched`` is set once a line
    matches ``pattern`` (the line is kept in ``match``)."""

    def __init__(self, stream, pattern: re.Pattern | None = None) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.data = bytearray()
        self.pattern = pattern
        self.matched = threading.Event()
        self.match = ""

    def run(self) -> None:
        line = b""
        try:
            while True:
                chunk = self.stream.read1(65536)
                if not chunk:
                    break
                self.data += chunk
                if len(self.data) > TAIL_BYTES:
                    del self.data[:-TAIL_BYTES]
                if self.pattern is not None and not self.matched.is_set():
                    *lines, line = (line + chunk).split(b"\n")
                    line = line[-TAIL_BYTES:]
                    for text in lines:
                        decoded = text.decode("utf-8", "replace").strip()
                        if self.pattern.search(decoded):
                            self.match = decoded
                            self.matched.set()
                            break
        except (OSError, ValueError):
            pass

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _last_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else line[:limit] + "..."


@dataclasses.dataclass
class Run:
    """What one encoder run did."""

    returncode: int | None          # None: killed (timed out, or hung after an error)
    stdout: str
    stderr: str
    #: The stderr line matching the error pattern after which it was killed, or "".
    error: str = ""


def run_command(args: list[str], *, cwd: Path, timeout: float, name: str,
                error_pattern: str | None = None) -> Run:
    """Run an encoder (no shell) in its own session.  Its process group is killed when it
    has run ``timeout`` seconds, ERROR_GRACE seconds after it printed a line matching
    ``error_pattern``, on any exception, and when it exits (processes it left behind)."""
    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
    except OSError as exc:
        raise BackendError(f"{name}: cannot run {args[0]!r}: {exc.strerror or exc}") from exc
    pattern = re.compile(error_pattern, re.MULTILINE) if error_pattern else None
    tails = [_Tail(proc.stdout), _Tail(proc.stderr, pattern)]
    for tail in tails:
        tail.start()
    returncode: int | None = None
    error = ""
    try:
        deadline = time.monotonic() + timeout
        error_deadline = None
        while True:
            now = time.monotonic()
            if tails[1].matched.is_set() and error_deadline is None:
                error_deadline = now + ERROR_GRACE
            limit = deadline if error_deadline is None else min(deadline, error_deadline)
            try:
                returncode = proc.wait(timeout=max(0.0, min(POLL, limit - now)))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= limit:
                    error = tails[1].match if error_deadline is not None and \
                        time.monotonic() >= error_deadline else ""
                    break
    finally:
        kill_group(proc, reap=False)
        proc.wait()
        for tail in tails:
            tail.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
    return Run(returncode, tails[0].text(), tails[1].text(), error)


# ---- the profile kvazaar gets wrong ----

#: general_max_12bit, _10bit, _8bit, _422chroma, _420chroma, _monochrome, intra,
#: one_picture_only and lower_bit_rate constraint flags of the Monochrome profiles (A.3.5).
_MONOCHROME_FLAGS = {8: (1, 1, 1, 1, 1, 1, 0, 0, 1), 10: (1, 1, 0, 1, 1, 1, 0, 0, 1),
                     12: (1, 0, 0, 1, 1, 1, 0, 0, 1), 16: (0, 0, 0, 1, 1, 1, 0, 0, 1)}


def _monochrome_ptl(unit: bytes, ptl_byte: int, bit_depth: int) -> bytes:
    """``unit`` with the general profile of its profile_tier_level() (which starts at byte
    ``ptl_byte`` of the RBSP) set to the Monochrome profile of ``bit_depth``."""
    data = bytearray(rbsp(unit))
    if len(data) < ptl_byte + 12:
        return unit
    general = int.from_bytes(data[ptl_byte:ptl_byte + 12], "big")   # 96 bits
    # bits from the most significant: space 2, tier 1, idc 5, compatibility 32, source 4,
    # constraint flags 43, inbld 1, level 8
    keep = general & ~((0x1F << 88) | (0xFFFFFFFF << 56) | (((1 << 43) - 1) << 9))
    flags = 0
    for flag in _MONOCHROME_FLAGS[bit_depth]:
        flags = (flags << 1) | flag
    general = keep | (4 << 88) | ((1 << (31 - 4)) << 56) | (flags << (9 + 34))
    data[ptl_byte:ptl_byte + 12] = general.to_bytes(12, "big")
    return bytes(unit[:2]) + emulation_prevention(bytes(data))


def rewrite_monochrome_profile(payload: bytes, bit_depth: int) -> bytes:
    """The payload with the general profile of each VPS and SPS whose profile_tier_level()
    signals no format range extensions profile (general_profile_idc 4 or its compatibility
    flag) rewritten to the Monochrome profile of ``bit_depth`` (general_profile_idc 4, its
    compatibility flag alone, the Monochrome constraint flags); progressive/interlaced
    flags, level and every other NAL unit unchanged.  For encoders that signal Main for
    4:0:0 (kvazaar), which no HEVC profile allows."""
    if bit_depth not in _MONOCHROME_FLAGS:
        raise EncoderInputError(f"no Monochrome profile for {bit_depth}-bit samples")
    out = []
    end = 0
    for offset, unit in split_nal_units_with_offsets(payload):
        t = nal_unit_type(unit)
        if t in (VPS_NUT, SPS_NUT):
            ptl_byte = 4 if t == VPS_NUT else 1
            data = rbsp(unit)
            if len(data) >= ptl_byte + 12:
                idc = data[ptl_byte] & 0x1F
                compat = int.from_bytes(data[ptl_byte + 1:ptl_byte + 5], "big")
                if not (idc == 4 or (compat >> (31 - 4)) & 1):
                    # the NAL unit replaced in place: start codes and zero bytes unchanged
                    out += [payload[end:offset], _monochrome_ptl(unit, ptl_byte, bit_depth)]
                    end = offset + len(unit)
    return payload if not out else b"".join(out) + payload[end:]


# ---- the backend ----


def ctu_size(width: int, height: int) -> int:
    """The ``{ctu}`` placeholder: the largest of 64, 32, 16 that is not above the picture's
    height and is below its width (more than one CTU column), else 16.  (x265 3.5 codes
    inter pictures one CTU wide wrongly: see the module documentation.)"""
    return next((size for size in (64, 32, 16) if size <= height and size < width), 16)


class ExternalBackend:
    """An HEVC backend running an external encoder (see the module documentation)."""

    def __init__(self, template: str | EncoderTemplate, *, lossless_template: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, cross_check: bool = True,
                 check_format: bool = True, rewrite_profile: bool | None = None,
                 min_width: int | None = None, min_height: int | None = None,
                 error_pattern: str | None = None,
                 name: str | None = None):
        if not isinstance(template, EncoderTemplate):
            template = EncoderTemplate(template)
        command = template.command
        lossless_template = lossless_template or template.lossless
        rewrite = template.rewrite_profile if rewrite_profile is None else rewrite_profile
        self.min_width = template.min_width if min_width is None else min_width
        self.min_height = template.min_height if min_height is None else min_height
        self.error_pattern = error_pattern or template.error_pattern
        if self.error_pattern is not None:
            try:
                re.compile(self.error_pattern)
            except re.error as exc:
                raise EncoderInputError(f"the encoder error pattern is no regular expression: "
                                        f"{exc}") from None
        self.argv = parse_template(command)
        self.lossless_argv = None if lossless_template is None else \
            parse_template(lossless_template, "the lossless encoder command")
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise EncoderInputError(f"the encoder timeout shall be a positive number of "
                                    f"seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self.cross_check = cross_check
        self.check_format = check_format
        self.rewrite_profile = rewrite
        self.program = os.path.basename(self.argv[0])
        self.name = name or f"external:{self.program}"

    @classmethod
    def named(cls, name: str, **kwargs) -> ExternalBackend:
        """The backend of a ready-made template of TEMPLATES."""
        if name not in TEMPLATES:
            raise EncoderInputError(f"no encoder template {name!r}; the templates are "
                                    f"{', '.join(sorted(TEMPLATES))}")
        kwargs.setdefault("name", name)
        return cls(TEMPLATES[name], **kwargs)

    # -- Backend --

    def encode_pictures(self, pictures: np.ndarray, bit_depth: int, qp: int, lossless: bool,
                        preset: str = "medium") -> tuple[bytes, list[bytes]]:
        pictures = self._checked(pictures, bit_depth, qp, preset)
        argv = self.argv
        if lossless:
            if self.lossless_argv is None:
                raise EncoderInputError(f"{self.name}: no lossless encoder command was given "
                                        f"(lossless_template)")
            argv = self.lossless_argv
        count, height, width = pictures.shape
        if width < self.min_width or height < self.min_height:
            raise BackendError(f"{self.name} cannot code {width}x{height} pictures (it needs "
                               f"pictures of at least {self.min_width}x{self.min_height})")
        with tempfile.TemporaryDirectory(prefix="refcodec-encoder-") as folder:
            folder_path = Path(folder)
            input_path, output_path = folder_path / INPUT_NAME, folder_path / OUTPUT_NAME
            dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
            np.ascontiguousarray(pictures, dtype=dtype).tofile(input_path)
            values = {"input": str(input_path), "output": str(output_path), "width": width,
                      "height": height, "bit_depth": bit_depth, "frames": count, "qp": qp,
                      "preset": preset, "ctu": ctu_size(width, height)}
            try:
                args = [arg.format(**values) for arg in argv]
            except (ValueError, KeyError, IndexError) as exc:
                raise EncoderInputError(f"{self.name}: the command does not format: "
                                        f"{exc}") from None
            run = run_command(args, cwd=folder_path, timeout=self.timeout, name=self.name,
                              error_pattern=self.error_pattern)
            what = f"{self.name} ({count} pictures of {width}x{height}, {bit_depth}-bit)"
            if run.returncode is None and run.error:
                raise BackendError(f"{what} printed an error and did not exit (killed): "
                                   f"{_last_line(run.error)}")
            if run.returncode is None:
                raise BackendError(f"{what} timed out after {self.timeout:g} s and was killed")
            if run.returncode != 0:
                status = f"was killed by signal {-run.returncode}" if run.returncode < 0 \
                    else f"exited with status {run.returncode}"
                said = _last_line(run.stderr) or _last_line(run.stdout)
                raise BackendError(f"{what} {status}" + (f": {said}" if said else
                                                         " (nothing on stderr)"))
            if not output_path.is_file():
                said = _last_line(run.stderr)
                raise BackendError(f"{what} wrote no output file {{output}}"
                                   + (f" ({said})" if said else ""))
            payload = output_path.read_bytes()
        if not payload:
            raise BackendError(f"{what} wrote an empty output file")
        if self.rewrite_profile:
            payload = rewrite_monochrome_profile(payload, bit_depth)
        return payload, self._picture_md5s(payload, count, height, width, bit_depth, what)

    def decode_pictures(self, payload: bytes, num_pictures: int, height: int, width: int,
                        bit_depth: int, **kwargs) -> np.ndarray:
        """FFmpeg, as refcodec.hevc.pyav.PyAVBackend."""
        from . import pyav
        return pyav.PyAVBackend().decode_pictures(payload, num_pictures, height, width,
                                                  bit_depth, **kwargs)

    # -- helpers --

    def _checked(self, pictures, bit_depth: int, qp: int, preset: str) -> np.ndarray:
        pictures = np.asarray(pictures)
        if pictures.ndim != 3 or 0 in pictures.shape:
            raise EncoderInputError(f"{self.name}: pictures shall be a non-empty (P, H, W) "
                                    f"array, got shape {pictures.shape}")
        if not np.issubdtype(pictures.dtype, np.integer):
            raise EncoderInputError(f"{self.name}: pictures shall hold integers, got "
                                    f"{pictures.dtype}")
        if bit_depth not in BIT_DEPTHS:
            raise EncoderInputError(f"{self.name}: bit_depth shall be 8, 10 or 12, got "
                                    f"{bit_depth!r}")
        low, high = int(pictures.min()), int(pictures.max())
        if low < 0 or high >= 1 << bit_depth:
            raise EncoderInputError(f"{self.name}: samples shall be in 0..{(1 << bit_depth) - 1}"
                                    f" at {bit_depth}-bit, got {low}..{high}")
        if isinstance(qp, bool) or not isinstance(qp, (int, np.integer)) or not 0 <= qp <= 51:
            raise EncoderInputError(f"{self.name}: qp shall be an integer in 0..51, got {qp!r}")
        if not (isinstance(preset, str) and re.fullmatch(r"[a-z]+", preset)):
            raise EncoderInputError(f"{self.name}: preset shall be a lower-case word, got "
                                    f"{preset!r}")
        return pictures

    def _picture_md5s(self, payload: bytes, count: int, height: int, width: int,
                      bit_depth: int, what: str) -> list[bytes]:
        try:
            output = slices.output_order(payload)
        except ConformanceViolation as exc:
            raise BackendError(f"{what} wrote no valid HEVC stream: {exc}") from exc
        if not output:
            raise BackendError(f"{what} wrote no coded picture ({len(payload)} bytes)")
        if len(output) != count:
            raise BackendError(f"{what} wrote a stream of {len(output)} output pictures")
        for p in output:
            if (p.width, p.height, p.bit_depth, p.chroma_format_idc) != \
                    (width, height, bit_depth, 0):
                raise BackendError(
                    f"{what} wrote picture {p.decode_index} (decoding order) as {p.width}x"
                    f"{p.height}, {p.bit_depth}-bit, chroma_format_idc {p.chroma_format_idc}; "
                    f"the layer needs {width}x{height}, {bit_depth}-bit 4:0:0")
        sets = params.parse_parameter_sets(payload)
        for _, sps in sets.sps:
            crop = (sps.conf_win_left_offset, sps.conf_win_right_offset,
                    sps.conf_win_top_offset, sps.conf_win_bottom_offset)
            if any(crop):
                raise BackendError(
                    f"{what} coded {sps.pic_width_in_luma_samples}x"
                    f"{sps.pic_height_in_luma_samples} pictures cropped by a conformance "
                    f"window (left, right, top, bottom {crop}): their hashes do not cover "
                    f"the output samples (clause 10.5)")
        if self.check_format:
            violations = params.check_payload(payload, bit_depth=bit_depth,
                                              picture_width=width, picture_height=height,
                                              num_pictures=count)
            if violations:
                more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
                raise BackendError(f"{what} wrote a stream the format refuses: "
                                   f"{violations[0]}{more}")
        hashes = [p.md5 for p in output]
        have_sei = all(h is not None for h in hashes)
        if have_sei and not self.cross_check:
            return hashes
        try:
            decoded = self.decode_pictures(payload, count, height, width, bit_depth)
        except ConformanceViolation as exc:
            raise BackendError(f"FFmpeg does not decode what {what} wrote: {exc}") from exc
        md5s = planes_md5(decoded, bit_depth)
        if have_sei:
            wrong = [i for i, (a, b) in enumerate(zip(hashes, md5s)) if a != b]
            if wrong:
                raise BackendError(
                    f"FFmpeg decodes {len(wrong)} of the {count} pictures {what} wrote "
                    f"otherwise than its decoded picture hash SEIs say (first: picture "
                    f"{wrong[0]} in output order)")
        return md5s
