"""The decoder's helper thread (refcodec.threads): same results with and without it."""

import hashlib
import signal
import threading

import numpy as np
import pytest

import refcodec
from refcodec import codec, threads, verify
from refcodec.codec import EncoderConfig
from refcodec.errors import ConformanceViolation

from conftest import relu_features
from test_bitstream import recrc_all


@pytest.fixture
def helper_on(monkeypatch):
    """The helper enabled whatever the machine (the process may be limited to one CPU)."""
    monkeypatch.delenv("REFCODEC_THREADS", raising=False)
    monkeypatch.setattr(threads, "enabled", lambda: True)


def serial(planes):
    return [hashlib.md5(p).digest() for p in planes]


@pytest.mark.parametrize("shape", [(0, 8, 8), (1, 64, 64), (40, 16, 16), (40, 32, 64),
                                   (80, 56, 56), (9, 224, 224), (16, 112, 112)])
@pytest.mark.parametrize("with_work", [False, True])
def test_md5_beside_matches_serial_hashing(shape, with_work, helper_on):
    """Every size class: below 2 KiB, beside (waiting), beside and joining."""
    planes = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    ran = []
    digests, result = threads.md5_beside(
        planes, (lambda: ran.append(threading.get_ident()) or "done") if with_work else None)
    assert digests == serial(planes)
    assert result == ("done" if with_work else None)
    assert ran == ([threading.get_ident()] if with_work else [])


def test_md5_beside_uses_the_helper_for_large_planes(helper_on, monkeypatch):
    """Large planes are hashed (at least in part) on another thread; small ones are not."""
    seen = set()
    real = hashlib.md5
    helper_hashed = threading.Event()

    def spy(data):
        seen.add(threading.get_ident())
        if threading.get_ident() != here:
            helper_hashed.set()
        return real(data)

    here = threading.get_ident()
    monkeypatch.setattr(hashlib, "md5", spy)
    big = np.zeros((8, 224, 224), np.uint8)
    # the work lasts until the helper has hashed a plane (else this thread, which joins in
    # the hashing of large planes, may take every plane before the helper starts)
    threads.md5_beside(big, lambda: helper_hashed.wait(timeout=60))
    assert helper_hashed.is_set() and seen - {here}
    seen.clear()
    threads.md5_beside(np.zeros((64, 16, 16), np.uint8), lambda: None)
    assert seen == {here}


def test_helper_off_by_environment(monkeypatch):
    monkeypatch.setenv("REFCODEC_THREADS", "1")
    assert not threads.enabled()
    monkeypatch.setenv("REFCODEC_THREADS", "2")
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert not threads.enabled()   # one CPU
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert threads.enabled()


def test_md5_beside_raises_the_work_error_after_the_helper_stopped(helper_on):
    planes = np.zeros((64, 224, 224), np.uint8)

    def work():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        threads.md5_beside(planes, work)
    # the helper is free again: the next call is served
    assert threads.md5_beside(planes[:2], lambda: 1) == (serial(planes[:2]), 1)


def test_md5_beside_raises_a_hashing_error(helper_on):
    planes = [bytes(4096)] * 70 + [object()]   # hashlib refuses a non-buffer
    with pytest.raises(TypeError):
        threads.md5_beside(planes, lambda: None)


@pytest.mark.hevc
@pytest.mark.parametrize("shape, packing", [((1, 8, 224, 224), "auto"),
                                            ((2, 48, 28, 28), "auto"),
                                            ((1, 96, 7, 7), "tiled")])
def test_decode_is_identical_with_and_without_the_helper(shape, packing, rng, monkeypatch):
    x = relu_features(rng, shape)
    data = refcodec.encode({"x": x}, EncoderConfig(qp=22, preset="ultrafast", packing=packing))
    monkeypatch.setattr(threads, "enabled", lambda: True)
    on = refcodec.decode(data)["x"]
    monkeypatch.setattr(threads, "enabled", lambda: False)
    off = refcodec.decode(data)["x"]
    layer = refcodec.read_headers(data).layers[0]
    plain = codec.reconstruct(layer.header, codec.decode_samples(layer))
    assert on.tobytes() == off.tobytes() == plain.tobytes()
    assert on.shape == x.shape


@pytest.mark.hevc
def test_sample_md5_mismatch_is_found_with_the_helper(rng, monkeypatch):
    """A wrong sample_md5 in a stream large enough for the helper: refused at clause 8.4.1,
    from decode, decode_samples and verify."""
    x = relu_features(rng, (1, 8, 224, 224))
    data = bytearray(refcodec.encode({"x": x}, EncoderConfig(qp=22, preset="ultrafast")))
    layer = refcodec.read_headers(bytes(data)).layers[0]
    md5_at = layer.payload_offset - 16
    data[md5_at] ^= 1
    data = recrc_all(bytes(data))
    monkeypatch.setattr(threads, "enabled", lambda: True)
    bad = refcodec.read_headers(data).layers[0]
    for call in (lambda: refcodec.decode(data), lambda: codec.decode_samples(bad)):
        with pytest.raises(ConformanceViolation) as info:
            call()
        assert info.value.clause == "8.4.1" and info.value.offset == md5_at
    report = verify.verify(data)
    assert [v.clause for v in report.violations] == ["8.4.1"]


@pytest.mark.skipif(not hasattr(threads.os, "fork"), reason="needs fork")
def test_helper_works_in_a_forked_child(helper_on):
    """A child forked after the helper started gets a helper of its own (the parent's
    thread does not exist in the child: reusing its executor would hang)."""
    import multiprocessing
    planes = np.random.default_rng(5).integers(0, 256, (16, 224, 224), dtype=np.uint8)
    assert threads.md5_beside(planes, lambda: None)[0] == serial(planes)   # helper started
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_child_digests, (planes,)).get(timeout=60)
    assert got == serial(planes)


def _child_digests(planes):
    threads.enabled = lambda: True
    return threads.md5_beside(planes, lambda: None)[0]


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no pthread_sigmask")
def test_the_helper_thread_leaves_signals_to_the_main_thread():
    """A process-directed SIGINT or SIGTERM that the kernel handed to the helper would not
    interrupt the main thread's blocking call: the helper blocks them."""
    blocked = threads._helper().submit(signal.pthread_sigmask, signal.SIG_BLOCK, ()).result()
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP} <= set(blocked)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, ())   # this thread
