"""The decoder's helper thread (informative: it changes speed, never a result).

Once a layer's pictures are decoded, their picture MD5s (clause 8.4.1) are computed on a
helper thread while the calling thread reconstructs the tensor; for large planes the calling
thread then joins in the hashing.  hashlib hashes inputs of 2 KiB or more without the GIL,
so the two run on two cores; smaller planes are hashed on the calling thread alone (with the
GIL held per plane, a helper would only make the threads wait for each other).  The limits
below were measured with tools/bench_codec.py on two cores.

``REFCODEC_THREADS=1`` in the environment (read at each call) turns the helper off.
Results are bit-identical either way (tested).
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: hashlib hashes inputs of at least this many bytes without the GIL (HASHLIB_GIL_MINSIZE)
HASHLIB_GIL_MINSIZE = 2048
#: below this many bytes in all, the planes are hashed on the calling thread alone (handing
#: work to the helper costs more than it saves)
BESIDE_MIN_BYTES = 1 << 18
#: the calling thread joins in the hashing once its own work is done only for planes of at
#: least this many bytes: for smaller ones the two threads would mostly pass the GIL back and
#: forth between hashlib calls (measured with tools/bench_codec.py: 56x56 planes hash slower
#: on two threads than on one, 224x224 planes faster)
JOIN_MIN_BYTES = 1 << 15
#: the planes are handed out in about this many groups (so that neither thread waits long
#: for the other at the end)
GROUPS = 16

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def enabled() -> bool:
    """True when the helper may run: REFCODEC_THREADS is not 0 or 1 and the process may use
    at least two CPUs."""
    if os.environ.get("REFCODEC_THREADS", "").strip() in ("0", "1"):
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        cpus = os.cpu_count() or 1
    return cpus >= 2


#: Signals the helper thread blocks, so that the kernel hands them to the main thread: a
#: process-directed signal may go to any thread that does not block it, and one that lands
#: on the helper does not interrupt the main thread's blocking call (a Ctrl-C during a
#: `time.sleep` or a write then waits for that call to end).
HELPER_BLOCKED_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGALRM",
                                       "SIGUSR1", "SIGUSR2", "SIGCHLD")
    if hasattr(signal, name))


def _block_signals() -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, HELPER_BLOCKED_SIGNALS)


def _helper() -> ThreadPoolExecutor:
    """The one helper thread, started on first use and kept (a forked child starts its own:
    it inherits no threads); it blocks HELPER_BLOCKED_SIGNALS."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refcodec-md5",
                                       initializer=_block_signals)
        return _pool


def _forget_helper_in_child() -> None:
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helper_in_child)


def _digests(planes: Sequence) -> list[bytes]:
    md5 = hashlib.md5
    return [md5(p).digest() for p in planes]


def _nothing() -> None:
    return None


def md5_beside(planes: Sequence, work: Callable[[], T] | None = None) -> tuple[list[bytes], T]:
    """``([hashlib.md5(p).digest() for p in planes], work())`` (``work`` None: nothing to
    do beside the hashing, which two threads then share when the planes are large).

    When the planes are large enough (each at least HASHLIB_GIL_MINSIZE bytes, all together
    at least BESIDE_MIN_BYTES) and ``enabled()``, the helper thread hashes them while
    ``work()`` runs on this thread, which then hashes what is left when the planes are at
    least JOIN_MIN_BYTES (else it waits for the helper); otherwise the planes are hashed
    here first.  ``planes`` are bytes-like objects that nothing writes to meanwhile.
    An exception of ``work()`` (or of hashing) is raised once the helper has stopped.
    """
    count = len(planes)
    size = memoryview(planes[0]).nbytes if count else 0
    if work is None:
        work = _nothing
        if size < JOIN_MIN_BYTES:   # nothing to overlap, and two threads hash no faster
            return _digests(planes), None
    if count < 2 or size < HASHLIB_GIL_MINSIZE or count * size < BESIDE_MIN_BYTES \
            or not enabled():
        return _digests(planes), work()
    digests: list[bytes | None] = [None] * count
    step = -(-count // GROUPS)
    groups: queue.SimpleQueue = queue.SimpleQueue()
    for start in range(0, count, step):
        groups.put(start)

    def hash_groups() -> None:
        md5 = hashlib.md5
        while True:
            try:
                start = groups.get_nowait()
            except queue.Empty:
                return
            for i in range(start, min(start + step, count)):
                digests[i] = md5(planes[i]).digest()

    helper = _helper().submit(hash_groups)
    try:
        result = work()
    except BaseException:
        while not groups.empty():   # stop the helper at its next group
            try:
                groups.get_nowait()
            except queue.Empty:
                break
        helper.exception()   # wait for it, without raising its error over this one
        raise
    try:
        if size >= JOIN_MIN_BYTES:
            hash_groups()
    finally:
        helper.result()
    return digests, result
