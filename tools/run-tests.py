#!/usr/bin/env python3
"""Runs every test tier and ends with one line: "total: N passed, N failed".

Tiers: rustfmt, clippy, the luacheck and one-binding-file checks, cargo's unit tests, busted
specs (which load the built library), and the end-to-end suite against a real Prosody.
Each tier's own output is shown as it runs; its counts are read from the runner's summary.
"""
import argparse
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, env=None):
    print(f"\n=== {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    return proc.returncode, proc.stdout


def check(name, cmd):
    """A tier that is one pass/fail check."""
    code, _ = run(cmd)
    return (1, 0) if code == 0 else (0, 1)


def one_binding_file():
    uses_mlua = re.compile(r"\bmlua::|\buse mlua\b")
    users = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.rs") if uses_mlua.search(p.read_text()))
    print(f"\n=== files using mlua: {users}")
    return (1, 0) if users == ["src/lua_api.rs"] else (0, 1)


def cargo_tests():
    code, out = run(["cargo", "test", "--locked", "--lib"])
    passed = sum(int(m) for m in re.findall(r"test result: \w+\. (\d+) passed", out))
    failed = sum(int(m) for m in re.findall(r"; (\d+) failed", out))
    if code != 0 and failed == 0:
        failed = 1  # did not build or crashed
    return passed, failed


def busted():
    code, out = run(["busted", "--lua=lua5.4", "--lpath=./spec/?.lua", "-o", "utfTerminal", "spec"])
    m = re.search(r"(\d+) success\w* / (\d+) failure\w* / (\d+) error", out)
    if not m:
        return 0, 1
    passed, failed = int(m.group(1)), int(m.group(2)) + int(m.group(3))
    if code != 0 and failed == 0:
        failed = 1
    return passed, failed


def e2e(venv):
    report = ROOT / "target" / "e2e-report.xml"
    report.unlink(missing_ok=True)
    cmd = [str(Path(venv) / "bin" / "pytest"), "spec/e2e", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
    code, _ = run(cmd, env=dict(os.environ))
    if not report.exists():
        return 0, 1
    suites = ET.parse(report).getroot()
    suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
    total = int(suite.get("tests", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    if code not in (0, 1) and failed == 0:
        failed = 1  # collection or internal error
    return total - failed - skipped, failed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--venv", default=".venv")
    parser.add_argument("--only", choices=["lint", "unit", "e2e"])
    args = parser.parse_args()

    tiers = []
    if args.only in (None, "lint"):
        tiers += [
            ("rustfmt", lambda: check("rustfmt", ["cargo", "fmt", "--check"])),
            ("clippy", lambda: check("clippy", ["cargo", "clippy", "--locked", "--all-targets", "--", "-D", "warnings"])),
            ("luacheck", lambda: check("luacheck", ["luacheck", "-q", "lua", "spec", "bench"])),
            ("one binding file", one_binding_file),
        ]
    if args.only in (None, "unit"):
        tiers += [("cargo test", cargo_tests), ("busted", busted)]
    if args.only in (None, "e2e"):
        tiers += [("end-to-end", lambda: e2e(args.venv))]

    totals = [0, 0]
    lines = []
    for name, tier in tiers:
        passed, failed = tier()
        totals[0] += passed
        totals[1] += failed
        lines.append(f"  {name:<18}{passed:>5} passed{failed:>5} failed")
    print("\n=== summary")
    print("\n".join(lines))
    print(f"total: {totals[0]} passed, {totals[1]} failed")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
