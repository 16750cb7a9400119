"""What every command of ``refcodec`` shares: the exit codes, UsageError (exit 2) and the
argument parser that reports its errors as one line."""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_BITSTREAM, EXIT_BACKEND = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Bad command-line use or an unreadable input file (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other error
        raise UsageError(f"{self.prog}: {message}")
