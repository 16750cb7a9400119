"""The one exception hierarchy of refcodec.

Every error that bad input can cause is one of these classes.  Each carries the
spec clause it enforces (``clause``), the byte offset in the bitstream where the
problem was found (``offset``, or ``None`` when it has no position) and the
syntax path of the offending element (``path``).  The message format is fixed::

    [8.3.5] sample_bit_depth shall be 8, 10 or 12, got 9 (byte 53, layers[0].sample_bit_depth)
"""

from __future__ import annotations


class RefcodecError(Exception):
    """Base class of every error refcodec raises on purpose."""

    #: CLI exit code used when this error reaches the command line.
    exit_code = 3

    def __init__(self, message: str, *, clause: str | None = None,
                 offset: int | None = None, path: str | None = None):
        self.message = message
        self.clause = clause
        self.offset = offset
        self.path = path
        super().__init__(self._format())

    def _format(self) -> str:
        text = f"[{self.clause}] {self.message}" if self.clause else self.message
        where = []
        if self.offset is not None:
            where.append(f"byte {self.offset}")
        if self.path:
            where.append(self.path)
        if where:
            text += f" ({', '.join(where)})"
        return text

    def to_dict(self) -> dict:
        return {"error": type(self).__name__, "clause": self.clause, "offset": self.offset,
                "path": self.path, "message": self.message}


class BitstreamError(RefcodecError, ValueError):
    """The input bytes are not a conforming bitstream."""


class SyntaxViolation(BitstreamError):
    """The bytes cannot be parsed (truncated, bad magic, length out of range, bad CRC)."""


class ConformanceViolation(BitstreamError):
    """The bytes parse, but break a 'shall' of the specification."""


class UnsupportedFeature(BitstreamError):
    """A reserved value, an unknown critical unit or a newer major version."""


class EncoderInputError(RefcodecError, ValueError):
    """Bad tensors or options given to the encoder (or to the CLI)."""

    exit_code = 2


class BackendError(RefcodecError, RuntimeError):
    """The HEVC library failed; the original error is chained as ``__cause__``."""

    exit_code = 4
