#!/usr/bin/env python3
"""Runs every test tier and ends with one line: "total: N passed, N failed, N skipped".

Tiers: rustfmt, clippy and luacheck over the workspace, cargo's unit tests, busted
specs (which load the built library), the rockspec (its version is Cargo.toml's; luarocks builds
it offline into target/rocks-tree, tools/build-rock.sh; `prosodyctl install` of the binary rock on
each host: the rock tiers), and the end-to-end suite against a real Prosody, once per
host: the system's Prosody 0.12 and the Prosody 13 of target/prosody13 (tools/prosody13.sh), each
its own tier named after the release it runs; the browser tiers (spec/e2e/test_browser_web.py, one per
host: mod_invites_web in Chromium through Selenium, run after the others). Then the PostgreSQL tiers, one per host: the
storage-compatibility, registration, XEP-0379 and purge tests (POSTGRES_TESTS) with storage =
"sql" on a private PostgreSQL this script starts (spec/e2e/postgres.py: initdb in a temporary
directory, a loopback port, stopped by pid at the end; each Prosody server gets a database of its
own on it). Then the stock-layout tiers, one per host: the storage, registration, XEP-0379,
lifecycle, rooms and purge tests (STOCK_LAYOUT_TESTS) with invites_storage_layout = "stock" (the
other tiers run the default, per-invite layout). All end-to-end tiers run at the same time (each server has its own ports, directories
and database); their outputs are shown one after the other.
Each tier's own output is shown as it runs; its counts are read from the runner's summary.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spec" / "e2e"))
import postgres  # noqa: E402  (a private PostgreSQL for the PostgreSQL tiers)
import prosody_host  # noqa: E402  (the e2e harness: which Prosody a host is)

HOSTS = ("12", "13")

# What the PostgreSQL tiers run, with storage = "sql" on PostgreSQL (E2E_SQL_DRIVER) as every
# server's default (E2E_DEFAULT_STORAGE); the storage-compatibility variants that name internal
# storage are left out (POSTGRES_DESELECT). test_postgres.py is collected only in these tiers.
POSTGRES_TESTS = [
    "spec/e2e/test_storage_compat.py",
    "spec/e2e/test_register.py",
    "spec/e2e/test_xep0379.py",
    "spec/e2e/test_mod_invites.py::test_expired_invites_are_purged_on_a_timer",
    "spec/e2e/test_mod_invites.py::test_deleting_a_user_removes_their_invites",
    "spec/e2e/test_mod_invites.py::test_sqlite_storage",
    "spec/e2e/test_mod_invites.py::test_sqlite_delete_revokes_both_halves",
    "spec/e2e/test_postgres.py",
]
POSTGRES_DESELECT = "not internal"
# What the stock-layout tiers run, with invites_storage_layout = "stock" (E2E_STORAGE_LAYOUT) on
# every server of ours: the end-to-end tiers cover the default, per-invite layout.
STOCK_LAYOUT_TESTS = [
    "spec/e2e/test_storage_compat.py",
    "spec/e2e/test_register.py",
    "spec/e2e/test_xep0379.py",
    "spec/e2e/test_lifecycle.py",
    "spec/e2e/test_rooms.py",
    "spec/e2e/test_mod_invites.py::test_expired_invites_are_purged_on_a_timer",
    "spec/e2e/test_mod_invites.py::test_deleting_a_user_removes_their_invites",
]
STOCK_LAYOUT_ENV = {"E2E_STORAGE_LAYOUT": "stock"}
# What `make test-package` runs against the installed Debian package (tools/test-package.sh).
PACKAGE_DIR = Path("/usr/lib/prosody-invites")
PACKAGE_TESTS = ["spec/e2e/test_register.py", "spec/e2e/test_xep0379.py"]
POSTGRES_ENV = {"E2E_SQL_DRIVER": "PostgreSQL", "E2E_DEFAULT_STORAGE": "sql"}
# The browser tiers, one per host: mod_invites_web in Debian's Chromium through Selenium and
# chromium-driver, axe-core from target/npm (make axe), QR codes decoded by zbarimg.
BROWSER_TESTS = ["spec/e2e/test_browser_web.py"]
BROWSER_ENV = {"E2E_BROWSER": "1"}


def show(cmd, out, seconds=None):
    took = f"  ({seconds:.0f}s)" if seconds is not None else ""
    print(f"\n=== {' '.join(cmd)}{took}", flush=True)
    sys.stdout.write(out)
    sys.stdout.flush()


def run(cmd, env=None):
    print(f"\n=== {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    return proc.returncode, proc.stdout


def check(name, cmd):
    """A tier that is one pass/fail check."""
    code, _ = run(cmd)
    return (1, 0, 0) if code == 0 else (0, 1, 0)


def cargo_tests():
    code, out = run(["cargo", "test", "--locked", "--workspace", "--lib"])
    passed = sum(int(m) for m in re.findall(r"test result: \w+\. (\d+) passed", out))
    failed = sum(int(m) for m in re.findall(r"; (\d+) failed", out))
    ignored = sum(int(m) for m in re.findall(r"; (\d+) ignored", out))
    if code != 0 and failed == 0:
        failed = 1  # did not build or crashed
    return passed, failed, ignored


def busted():
    code, out = run(["busted", "--lua=lua5.4", "--lpath=./spec/?.lua", "-o", "utfTerminal", "spec"])
    m = re.search(r"(\d+) success\w* / (\d+) failure\w* / (\d+) error\w* / (\d+) pending", out)
    if not m:
        return 0, 1, 0
    passed, failed, pending = int(m.group(1)), int(m.group(2)) + int(m.group(3)), int(m.group(4))
    if code != 0 and failed == 0:
        failed = 1
    return passed, failed, pending


def installed_package():
    """The installed prosody-invites package holds exactly target/plugins in PACKAGE_DIR, its docs,
    and nothing else: no files under /etc, no maintainer scripts, no conffiles."""
    print(f"\n=== installed package: dpkg -L prosody-invites against {ROOT / 'target' / 'plugins'}", flush=True)
    problems = []
    listed = subprocess.run(["dpkg-query", "-L", "prosody-invites"], capture_output=True, text=True)
    if listed.returncode != 0:
        print(listed.stderr)
        return 0, 1, 0
    files = [Path(f) for f in listed.stdout.split("\n") if f.strip() and Path(f).is_file()]
    plugins = ROOT / "target" / "plugins"
    want = sorted(p.name for p in plugins.iterdir() if p.is_file())
    have = sorted(f.name for f in files if f.parent == PACKAGE_DIR)
    if have != want:
        problems.append(f"{PACKAGE_DIR} holds {have}, target/plugins {want}")
    for name in set(have) & set(want):
        if (PACKAGE_DIR / name).read_bytes() != (plugins / name).read_bytes():
            problems.append(f"{PACKAGE_DIR / name} differs from target/plugins/{name}")
    others = [str(f) for f in files if f.parent != PACKAGE_DIR
              and not str(f).startswith("/usr/share/doc/prosody-invites/")]
    if others:
        problems.append(f"files outside the plugin and doc directories: {others}")
    info = Path("/var/lib/dpkg/info")
    scripts = [p.name for p in info.glob("prosody-invites.*")
               if p.suffix in (".preinst", ".postinst", ".prerm", ".postrm", ".conffiles", ".config")]
    if scripts:
        problems.append(f"maintainer scripts or conffiles: {scripts}")
    print("\n".join(problems) if problems else f"ok: {len(files)} files, {len(have)} in {PACKAGE_DIR}")
    return (0, 1, 0) if problems else (1, 0, 0)


def cargo_version():
    m = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    return m.group(1) if m else None


def rockspec_version():
    """One rockspec, prosody-invites-VERSION-1.rockspec, whose name and version field carry
    Cargo.toml's version."""
    version = cargo_version()
    specs = sorted(p.name for p in ROOT.glob("*.rockspec"))
    want = f"prosody-invites-{version}-1.rockspec"
    print(f"\n=== rockspec version: Cargo.toml {version}, rockspecs {specs}", flush=True)
    if specs != [want]:
        print(f"expected exactly {want}")
        return 0, 1, 0
    field = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / want).read_text(), re.M)
    if not field or field.group(1) != f"{version}-1":
        print(f"{want}: version field {field and field.group(1)!r}, expected {version}-1")
        return 0, 1, 0
    return 1, 0, 0


ROCK_LUA = "5.4"


def luarocks_build():
    """tools/build-rock.sh (luarocks make into target/rocks-tree, offline; a binary rock in
    target/rocks); the tree's plugin directory must be target/plugins, byte for byte."""
    code, _ = run(["sh", "tools/build-rock.sh"])
    if code != 0:
        return 0, 1, 0
    tree = ROOT / "target" / "rocks-tree"
    plugins = ROOT / "target" / "plugins"
    plugin_dir = tree / "share" / "lua" / ROCK_LUA
    problems = []
    want = sorted(p.name for p in plugins.iterdir() if p.is_file())
    have = sorted(p.name for p in plugin_dir.iterdir() if p.is_file()) if plugin_dir.is_dir() else []
    if have != want:
        problems.append(f"{plugin_dir} holds {have}, target/plugins {want}")
    so = (plugins / "invites_core.so").read_bytes()
    rock_dir = tree / "lib" / "luarocks" / f"rocks-{ROCK_LUA}" / "prosody-invites" / f"{cargo_version()}-1"
    for path in [plugin_dir / n for n in set(have) & set(want)] + [rock_dir / "invites_core.so"]:
        ref = plugins / path.name
        if not path.is_file() or path.read_bytes() != (so if path.name == "invites_core.so" else ref.read_bytes()):
            problems.append(f"{path} is missing or differs from target/plugins/{path.name}")
    rocks = list((ROOT / "target" / "rocks").glob("prosody-invites-*.rock"))
    if len(rocks) != 1:
        problems.append(f"expected one binary rock in target/rocks, found {[r.name for r in rocks]}")
    print("\n".join(problems) if problems else f"ok: {plugin_dir} is target/plugins; {rocks[0].name}")
    return (0, 1, 0) if problems else (1, 0, 0)


def built_rock():
    rocks = sorted((ROOT / "target" / "rocks").glob("prosody-invites-*.rock"))
    return rocks[0] if len(rocks) == 1 else None


class E2E:
    """One host's end-to-end run: a pytest process started now, its counts read when done."""

    def __init__(self, venv, host, kind="end-to-end", extra_env=None, tests=("spec/e2e",)):
        self.host = host
        self.kind = kind
        self.env = dict(os.environ, **prosody_host.host_env(host), **(extra_env or {}))
        self.version = prosody_host.launcher_version(self.env["PROSODYCTL_BIN"])
        suffix = "" if kind == "end-to-end" else "-" + kind.replace(" ", "-")
        self.report = ROOT / "target" / f"e2e-report-{host}{suffix}.xml"
        self.report.unlink(missing_ok=True)
        self.cmd = [str(Path(venv) / "bin" / "pytest"), *tests, "-q", "-rfEs", "-p", "no:cacheprovider",
                    f"--junitxml={self.report}"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.out, self.seconds = "", 0.0
        self.reader = threading.Thread(target=self._collect, daemon=True)
        self.reader.start()

    def _collect(self):
        self.out, _ = self.proc.communicate()
        self.seconds = time.monotonic() - self.started

    @property
    def name(self):
        return f"{self.kind} {self.version}"

    def result(self):
        self.reader.join()
        code = self.proc.returncode
        shown = ("PROSODYCTL_BIN", "COMMUNITY_MODULES_DIR", "INVITES_PLUGIN_DIR", "E2E_ROCK", postgres.ENV,
                 *POSTGRES_ENV, *STOCK_LAYOUT_ENV, *BROWSER_ENV)
        show([f"{k}={self.env[k]}" for k in shown if k in self.env] + self.cmd, self.out, self.seconds)
        if not self.report.exists():
            return 0, 1, 0
        suites = ET.parse(self.report).getroot()
        suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
        total = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        if code not in (0, 1) and failed == 0:
            failed = 1  # collection or internal error
        return total - failed - skipped, failed, skipped


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--venv", default=".venv")
    parser.add_argument("--only", choices=["lint", "unit", "rock", "e2e", "browser", "postgresql", "package"],
                        help="one group of tiers (rock: the rockspec built with luarocks and installed with "
                             "prosodyctl; e2e: the end-to-end tiers without the PostgreSQL and rock ones; "
                             "browser: mod_invites_web in Chromium (Selenium, axe-core); "
                             "package: the installed Debian package, for tools/test-package.sh)")
    parser.add_argument("--host", choices=HOSTS, action="append",
                        help="end-to-end against this Prosody only: 12 (the system's 0.12) or 13 (target/prosody13)")
    parser.add_argument("--serial", action="store_true", help="run the hosts' end-to-end tiers one after the other")
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the PostgreSQL server we started is stopped (finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    hosts = args.host or list(HOSTS)
    with_e2e = args.only in (None, "e2e")
    with_pg = args.only in (None, "postgresql")
    with_package = args.only == "package"
    with_rock = args.only in (None, "rock")
    with_browser = args.only in (None, "browser")
    for host in hosts if with_e2e or with_pg or with_package or with_rock or with_browser else ():
        try:
            prosody_host.launcher_version(prosody_host.host_env(host)["PROSODYCTL_BIN"])
        except (OSError, prosody_host.ServerError) as e:
            hint = " (make prosody13)" if host == "13" else ""
            parser.error(f"no Prosody for host {host}{hint}: {e}")

    tiers = []
    if args.only in (None, "lint"):
        tiers += [
            ("rustfmt", lambda: check("rustfmt", ["cargo", "fmt", "--check"])),
            ("clippy", lambda: check("clippy", ["cargo", "clippy", "--locked", "--workspace", "--all-targets", "--", "-D", "warnings"])),
            ("luacheck", lambda: check("luacheck", ["luacheck", "-q", "lua", "spec", "bench"])),
        ]
    if args.only in (None, "unit"):
        tiers += [("cargo test", cargo_tests), ("busted", busted)]
    if with_rock:
        tiers += [("rockspec version", rockspec_version), ("luarocks", luarocks_build)]
    if with_package:
        tiers += [("installed package", installed_package)]

    totals = [0, 0, 0]
    lines = []

    recorded = []

    def record(name, counts, seconds):
        recorded.append((name, counts))
        for i, n in enumerate(counts):
            totals[i] += n
        passed, failed, skipped = counts
        lines.append(f"  {name:<20}{passed:>5} passed{failed:>5} failed{skipped:>5} skipped{seconds:>6.0f}s")

    for name, tier in tiers:
        t0 = time.monotonic()
        record(name, tier(), time.monotonic() - t0)
    pg = None
    try:
        runs = []
        if with_pg:
            try:
                pg = postgres.PostgresServer().start()
                print(f"\n=== PostgreSQL {postgres.bin_dir()} on 127.0.0.1:{pg.port} ({pg.dir})", flush=True)
            except (OSError, postgres.PostgresError) as e:
                print(f"\n=== PostgreSQL could not start: {e}", flush=True)
                for host in dict.fromkeys(hosts):
                    record(f"postgresql {prosody_host.launcher_version(prosody_host.host_env(host)['PROSODYCTL_BIN'])}",
                           (0, 1, 0), 0)
        starts = []
        if with_e2e:
            starts += [lambda host=host: E2E(args.venv, host) for host in dict.fromkeys(hosts)]
            starts += [lambda host=host: E2E(args.venv, host, "stock layout", STOCK_LAYOUT_ENV, STOCK_LAYOUT_TESTS)
                       for host in dict.fromkeys(hosts)]
        rock = built_rock() if with_rock else None
        if rock is not None:
            starts += [lambda host=host: E2E(args.venv, host, "rock", {"E2E_ROCK": str(rock)}, ["spec/e2e/test_rock.py"])
                       for host in dict.fromkeys(hosts)]
        if with_package:
            starts += [lambda host=host: E2E(args.venv, host, "package", {"INVITES_PLUGIN_DIR": str(PACKAGE_DIR)},
                                             PACKAGE_TESTS)
                       for host in dict.fromkeys(hosts)]
        if pg is not None:
            starts += [lambda host=host: E2E(args.venv, host, "postgresql", {**pg.env(), **POSTGRES_ENV},
                                             [*POSTGRES_TESTS, "-k", POSTGRES_DESELECT])
                       for host in dict.fromkeys(hosts)]
        for start in starts:
            runs.append(start())
            if args.serial:
                counts = runs[-1].result()
                record(runs[-1].name, counts, runs[-1].seconds)
        for e2e in () if args.serial else runs:
            counts = e2e.result()
            record(e2e.name, counts, e2e.seconds)
        # The browser tiers after the others: Chromium next to four Prosody test runs on two cores
        # makes the XMPP clients' timeouts flaky.
        browsers = [E2E(args.venv, host, "browser", BROWSER_ENV, BROWSER_TESTS)
                    for host in (dict.fromkeys(hosts) if with_browser else ())]
        for browser in browsers:
            record(browser.name, browser.result(), browser.seconds)
        if pg is not None and any(name.startswith("postgresql") and counts[1] for name, counts in recorded):
            print(f"\n=== PostgreSQL log (last lines of {pg.log_path})\n{pg.log_tail()}", flush=True)
    finally:
        if pg is not None:
            pg.cleanup()
    print("\n=== summary")
    print("\n".join(lines))
    print(f"total: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
