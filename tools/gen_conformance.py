#!/usr/bin/env python3
"""Generate the repository's conformance suite (conformance/) from its tables.

This runs exactly ``refcodec conformance generate conformance/features.csv --invalid
conformance/invalid.csv -o conformance`` (through refcodec.cli.main, from the repository
root), so the suite is made by the same code path users run.

    python tools/gen_conformance.py            # refuses to replace the committed suite
    python tools/gen_conformance.py --force    # regenerate conformance/ (then review the diff)
    python tools/gen_conformance.py --check    # generate into a temporary directory and
                                               # compare with the committed suite

The committed streams are frozen fixtures: tests/test_conformance.py checks them against
the manifest and never regenerates them.  --check is byte-exact only with the libx265 build
that made them (the HEVC payloads depend on it); it exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["conformance", "generate", "conformance/features.csv", "--invalid",
        "conformance/invalid.csv", "--interop", "../shared/interop"]


def _compare(committed: Path, fresh: Path) -> list[str]:
    old = json.loads((committed / "manifest.json").read_text(encoding="utf-8"))
    new = json.loads((fresh / "manifest.json").read_text(encoding="utf-8"))
    problems = []
    old_streams = {s["name"]: s for s in old["streams"]}
    new_streams = {s["name"]: s for s in new["streams"]}
    for name in sorted(set(old_streams) ^ set(new_streams)):
        problems.append(f"{name}: only in the {'committed' if name in old_streams else 'new'} "
                        f"suite")
    for name in sorted(set(old_streams) & set(new_streams)):
        a, b = old_streams[name], new_streams[name]
        if a.get("sha256") != b.get("sha256"):
            problems.append(f"{name}: STREAM BYTES differ")
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key) and key not in ("sha256", "size"):
                problems.append(f"{name}: {key} differs")
        if a.get("valid") and b.get("valid"):
            ref_a, ref_b = committed / a["reference"], fresh / b["reference"]
            if not ref_a.is_file() or ref_a.read_bytes() != ref_b.read_bytes():
                problems.append(f"{name}: reference file differs")
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key == "generator":      # the command names the output directory
            a, b = (x and x.get("libraries") for x in (a, b))
        if key != "streams" and a != b:
            problems.append(f"manifest: {key} differs")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--force", action="store_true", help="replace the committed suite")
    group.add_argument("--check", action="store_true",
                       help="regenerate into a temporary directory and compare")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from refcodec.cli import main as refcodec_main

    started = time.perf_counter()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            code = refcodec_main(ARGS + ["-o", tmp, "-q"])
            if code:
                return code
            problems = _compare(ROOT / "conformance", Path(tmp))
        for line in problems:
            print(line)
        changed = sorted({line.split(":")[0] for line in problems if "STREAM BYTES" in line})
        if changed:
            print(f"streams whose bytes changed ({len(changed)}): {', '.join(changed)}")
        print(f"{'differences: ' + str(len(problems)) if problems else 'identical'} "
              f"({time.perf_counter() - started:.1f} s)")
        return 1 if problems else 0
    code = refcodec_main(ARGS + ["-o", "conformance"] + (["--force"] if args.force else []))
    if code == 0:
        print(f"generated in {time.perf_counter() - started:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
