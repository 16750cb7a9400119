"""Child processes that refcodec runs: an external HEVC encoder (refcodec.hevc.external)
and a decoder under test (refcodec.conformance.runner).  Each runs in a session of its own,
so that it and whatever it starts are killed together."""

from __future__ import annotations

import os
import signal
import subprocess


def kill_group(proc: subprocess.Popen, *, reap: bool = True) -> None:
    """Kill ``proc`` with every process of its process group (started with
    ``start_new_session=True``), then, with ``reap``, wait for it."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    if reap:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - an unkillable process
            pass
