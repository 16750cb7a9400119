"""The conformance runner against hostile suites and decoders (issue 14): stream names
that are paths, symbolic links out of the suite, terminal control in messages, output
bombs, endless error output, daemonised grandchildren, signals, bad options.

The hostile decoders are small Python scripts written here and run with sys.executable.
No test depends on wall-clock thresholds beyond generous safety timeouts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from refcodec import conformance as conf
from refcodec.cli import main

pytestmark = [pytest.mark.conformance]

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "conformance"
MANIFEST = json.loads((SUITE / "manifest.json").read_text(encoding="utf-8"))
STREAMS = {s["name"]: s for s in MANIFEST["streams"]}
RUNNER = [sys.executable, "-m", "refcodec.cli", "conformance", "run"]
needs_posix = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")


def make_suite(tmp_path: Path, names=("basic",), rename: dict | None = None) -> Path:
    """A copy of some streams of the committed suite, with a hand-edited manifest."""
    suite = tmp_path / "suite"
    streams = []
    for name in names:
        stream = dict(STREAMS[name])
        for key in ("file", "reference"):
            if key in stream:
                (suite / stream[key]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(SUITE / stream[key], suite / stream[key])
        stream["name"] = (rename or {}).get(name, name)
        streams.append(stream)
    (suite / "manifest.json").write_text(json.dumps(MANIFEST | {"streams": streams}))
    return suite / "manifest.json"


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return f"{sys.executable} {path}"


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def wait_gone(pids, bound=30.0) -> list[int]:
    """The pids still alive after at most ``bound`` seconds (a safety bound only)."""
    end = time.monotonic() + bound
    while time.monotonic() < end and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# ---------------------------------------------------------------------------------
# 1. Paths and names


def test_stream_name_with_a_path_is_refused(tmp_path, capsys, monkeypatch):
    """A stream named ../../x/escaped would make the decoder write outside the runner's
    temporary folder (here tmp/a/b/vfc-conformance-*, so into tmp/a/x): the manifest is
    refused before anything runs."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "x").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "a" / "b"))
    marker = tmp_path / "ran"
    writer = script(tmp_path, "writer.py", f"""
        import sys
        open({str(marker)!r}, "w").write(sys.argv[2])
        open(sys.argv[2], "wb").write(b"x")
    """)
    manifest = make_suite(tmp_path, rename={"basic": "../../x/escaped"})
    code, out, err = run_cli(capsys, "conformance", "run", "--suite", manifest,
                             "--decoder", f"{writer} {{input}} {{output}}")
    assert code == 2 and err.count("\n") == 1 and "is not a stream name" in err, err
    assert "'../../x/escaped'" in err
    assert not marker.exists() and list((tmp_path / "a" / "x").iterdir()) == []
    for bad in ["a/b", "..", "a..b", ".hidden", "x\x1b[2Jy", "", "n" * 101, "a\\b"]:
        manifest = make_suite(tmp_path, rename={"basic": bad})
        with pytest.raises(conf.SuiteError, match="is not a stream name") as info:
            conf.run_suite(manifest, lambda *a: conf.DecoderRun(0))
        assert "\x1b" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("which", ["file", "reference"])
def test_symlink_out_of_the_suite_is_refused(tmp_path, which):
    manifest = make_suite(tmp_path)
    stream = STREAMS["basic"]
    outside = tmp_path / "outside" / Path(stream[which]).name
    outside.parent.mkdir()
    inside = manifest.parent / stream[which]
    shutil.move(inside, outside)
    inside.symlink_to(outside)
    with pytest.raises(conf.SuiteError, match="resolves outside the suite directory"):
        conf.run_suite(manifest, lambda *a: pytest.fail("the decoder ran"))
    # a link that stays inside the suite is followed
    inside.unlink()
    shutil.move(outside, manifest.parent / "moved")
    inside.symlink_to(manifest.parent / "moved")
    (r,) = conf.run_suite(manifest, lambda i, o, p: conf.DecoderRun(3))["results"]
    assert r["reasons"] == ["exit status 3 on a valid stream: "]


def test_terminal_control_is_stripped_from_what_is_printed(tmp_path, capsys):
    noisy = script(tmp_path, "noisy.py", r"""
        import sys
        sys.stderr.write("first\n\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b1m\x07\x08 end\x7f\n")
        sys.exit(1)
    """)
    manifest = make_suite(tmp_path, ["basic", "invalid_magic"])
    code, out, err = run_cli(capsys, "conformance", "run", "--suite", manifest, "--json",
                             tmp_path / "r.json", "--decoder", f"{noisy} {{input}} {{output}}")
    assert code == 1
    for text in (out, err):
        assert not any(ord(c) < 32 and c != "\n" or 0x7f <= ord(c) <= 0x9f for c in text), \
            repr(text)
    assert "exit status 1 on a valid stream: red1m end" in out
    assert "[1/2] " in err and "[2/2] " in err
    results = json.loads((tmp_path / "r.json").read_text())      # valid JSON, raw text
    basic = next(r for r in results["results"] if r["name"] == "basic")
    assert basic["stderr"] == "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x9b1m\x07\x08 end\x7f"


# ---------------------------------------------------------------------------------
# 2. Resource bounds

BOMB = r"""
import sys, zipfile
from numpy.lib import format as f
kind, key, side, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
header = {"descr": "|u1", "fortran_order": False, "shape": (side, side)}
if kind == "npy":          # a plain .npy declaring side * side bytes, holding 16
    with open(out, "wb") as fh:
        f.write_array_header_1_0(fh, header)
        fh.write(bytes(16))
else:                      # a real zip bomb: side * side zero bytes, deflated
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(key + ".npy", "w", force_zip64=True) as member:
            f.write_array_header_1_0(member, header)
            chunk = bytes(1 << 20)
            for _ in range(side * side >> 20):
                member.write(chunk)
"""


@pytest.mark.parametrize("kind,target", [("npz", "output"), ("npy", "output"),
                                         ("npz", "planes")])
def test_output_bomb_is_refused_from_its_header(tmp_path, monkeypatch, kind, target):
    """An output whose header declares more values than the manifest expects is refused
    without loading: np.load is never called on it, and the runner's memory stays small."""
    stream = STREAMS["basic"]
    key = stream["layers"][0]["layer_id"]
    bomb = script(tmp_path, "bomb.py", BOMB)
    side = 8192                               # 64 MiB of zeros (about 64 KiB deflated)
    decoder, _, _ = conf.command_decoder(f"{bomb} {kind} {key} {side} {{{target}}} {{input}}")
    real_load = np.load

    def guarded_load(file, *args, **kwargs):
        assert "vfc-conformance-" not in str(file), "np.load called on the decoder's output"
        return real_load(file, *args, **kwargs)
    monkeypatch.setattr(np, "load", guarded_load)
    tracemalloc.start()
    try:
        (r,) = conf.run_suite(SUITE / "manifest.json", decoder, streams=["basic"],
                              outputs=target == "output", planes=target == "planes")["results"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"bomb {kind} {target}: runner peak {peak / 2**20:.1f} MiB")
    assert r["status"] == "FAIL"
    (reason,) = r["reasons"]
    assert f"{target} file refused: " in reason and "(67108864 values), more than the" in reason
    assert "not loaded" in reason
    assert peak < 16 * 2**20


def test_endless_error_output_is_bounded(tmp_path):
    """A decoder printing 50 MB on stderr: the runner keeps its end only."""
    chatty = script(tmp_path, "chatty.py", """
        import sys
        line = b"x" * 1023 + b"\\n"
        for _ in range(50 * 1024):
            sys.stderr.buffer.write(line)
        sys.stderr.buffer.write(b"the last line\\n")
        sys.exit(1)
    """)
    decoder, _, _ = conf.command_decoder(f"{chatty} {{input}} {{output}}")
    tracemalloc.start()
    try:
        (r,) = conf.run_suite(SUITE / "manifest.json", decoder, streams=["basic"])["results"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"50 MB stderr: runner peak {peak / 2**20:.2f} MiB")
    assert r["reasons"] == ["exit status 1 on a valid stream: the last line"]
    assert peak < 8 * 2**20
    run = decoder(SUITE / STREAMS["basic"]["file"], tmp_path / "o.npz", None)
    assert len(run.stderr) == conf.runner.STDERR_LIMIT and run.stderr.endswith("the last line\n")


# ---------------------------------------------------------------------------------
# 3. Processes

DAEMON = r"""
import os, sys, time
mode, pids = sys.argv[1], sys.argv[2]
if os.fork() == 0:
    os.setsid()                     # out of the decoder's process group
    if os.fork() == 0:
        with open(os.path.join(pids, f"{os.getpid()}"), "w"):
            pass
        time.sleep(300)             # holds the decoder's stderr open
    os._exit(0)
os.wait()
while not os.listdir(pids):
    time.sleep(0.05)
if mode == "hang":
    time.sleep(300)
sys.exit(1)
"""


@needs_posix
@pytest.mark.parametrize("mode", ["exit", "hang"])
def test_daemonised_grandchild_does_not_hold_the_runner(tmp_path, mode):
    pids = tmp_path / "pids"
    pids.mkdir()
    daemon = script(tmp_path, "daemon.py", DAEMON)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [*RUNNER, "--suite", SUITE / "manifest.json", "--streams", "basic", "--timeout", "2",
             "--json", tmp_path / "r.json", "-q",
             "--decoder", f"{daemon} {mode} {pids} {{input}} {{output}}"],
            capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
    finally:
        kill_all(int(p.name) for p in pids.iterdir())
    print(f"daemonised grandchild ({mode}): the runner returned after {elapsed:.1f} s")
    assert done.returncode == 1, done.stderr
    (r,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert r["reasons"] == (["timed out after 2 s"] if mode == "hang" else
                            ["exit status 1 on a valid stream: "])


SLOW = r"""
import os, sys, time
pids = sys.argv[1]
if os.fork() == 0:                  # a child in the decoder's process group
    open(os.path.join(pids, f"{os.getpid()}"), "w").close()
    time.sleep(300)
    os._exit(0)
open(os.path.join(pids, f"{os.getpid()}"), "w").close()
time.sleep(300)
"""


@needs_posix
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_kills_the_decoders_and_removes_the_temporary_folders(tmp_path, signum, code):
    pids, tmp = tmp_path / "pids", tmp_path / "tmp"
    pids.mkdir()
    tmp.mkdir()
    slow = script(tmp_path, "slow.py", SLOW)
    runner = subprocess.Popen(
        [*RUNNER, "--suite", SUITE / "manifest.json", "--streams", "basic", "--streams",
         "qp_51", "--streams", "invalid_magic", "-j", "2", "--decoder",
         f"{slow} {pids} {{input}} {{output}}"],
        env=os.environ | {"TMPDIR": str(tmp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    started = []
    try:
        end = time.monotonic() + 60
        while len(started) < 4 and time.monotonic() < end and runner.poll() is None:
            time.sleep(0.05)
            started = [int(p.name) for p in pids.iterdir()]
        assert len(started) == 4, "the decoders did not start"
        assert len(list(tmp.glob("vfc-conformance-*"))) == 2
        runner.send_signal(signum)
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
        left = wait_gone(started)
        kill_all(left)
    assert runner.returncode == code, err
    assert f"interrupted by signal {int(signum)}" in err and out == ""
    assert left == []
    assert list(tmp.iterdir()) == []


def test_signal_handlers_are_restored(tmp_path, capsys):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    code, out, err = run_cli(capsys, "conformance", "run", "--suite", SUITE / "manifest.json",
                             "--streams", "invalid_magic", "-q", "--decoder",
                             f"{sys.executable} -c 'raise SystemExit(3)' {{input}} {{output}}")
    assert code == 0 and err == "", err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


# ---------------------------------------------------------------------------------
# 4. Options, 5. progress and the default suite


@pytest.mark.parametrize("argv,message", [
    (["--timeout", "nan"], "argument --timeout: 'nan'"),
    (["--timeout", "inf"], "argument --timeout: 'inf'"),
    (["--timeout", "1e300"], "argument --timeout: '1e300'"),
    (["--timeout", "0"], "argument --timeout: '0'"),
    (["--timeout", "-5"], "argument --timeout: '-5'"),
    (["--timeout", "soon"], "argument --timeout: not a number"),
    (["-j", "0"], "argument -j/--jobs: '0': shall be at least 1"),
    (["-j", "-2"], "argument -j/--jobs: '-2': shall be at least 1"),
    (["--json", "nodir/x.json"], "--json nodir/x.json: directory nodir does not exist"),
    (["--json", "."], "is a directory"),
])
def test_bad_options_are_refused_before_anything_runs(tmp_path, capsys, monkeypatch, argv,
                                                      message):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    decoder = script(tmp_path, "touch.py", f"open({str(marker)!r}, 'w')")
    code, out, err = run_cli(capsys, "conformance", "run", "--suite", SUITE / "manifest.json",
                             "--streams", "basic", "--decoder",
                             f"{decoder} {{input}} {{output}}", *argv)
    assert code == 2 and message in err and err.count("\n") == 1 and out == "", err
    assert not marker.exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_json_in_a_read_only_directory_is_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run_cli(capsys, "conformance", "run", "--suite",
                               SUITE / "manifest.json", "--json", ro / "r.json",
                               "--decoder", "never-run {input} {output}")
    finally:
        ro.chmod(0o700)
    assert code == 2 and "is not writable" in err


def test_default_suite_names_the_repository_suite(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "conformance", "run", "--decoder", "d {input} {output}")
    assert code == 2 and err.count("\n") == 1
    assert "conformance/manifest.json: no such manifest in the current directory" in err
    assert f"pass --suite {SUITE / 'manifest.json'}" in err


def test_progress_lines_on_stderr_and_quiet(tmp_path, capsys):
    refuser = f"{sys.executable} -c 'raise SystemExit(3)' {{input}} {{output}}"
    argv = ["conformance", "run", "--suite", SUITE / "manifest.json", "--streams",
            "invalid_magic", "--streams", "invalid_sample_md5", "--decoder", refuser]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0
    lines = err.splitlines()
    assert sorted(line.split(" ")[0] for line in lines) == ["[1/2]", "[2/2]"]
    assert all(" PASS (" in line and line.endswith(" s)") for line in lines), lines
    assert "2/2 passed: valid 0/0" in out and "[1/2]" not in out
    code, out_q, err_q = run_cli(capsys, *argv, "-q")
    assert code == 0 and err_q == "" and out_q.splitlines()[:-1] == out.splitlines()[:-1]
