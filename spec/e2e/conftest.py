"""Fixtures for the end-to-end tests against a real Prosody.

    server          a started ProsodyServer with the default modules
    make_server     factory: make_server(**ProsodyServer kwargs, start=True)
    tmp             a private directory for this test (traversable by the prosody user)
    impl            "ours" or "stock" (from $INVITES_IMPL); prosody_host.is_stock(server) for a server
    host_version    the Prosody release the servers run, a tuple: (0, 12, 3) or (13, 0, 1)
                    ($PROSODY_BIN/$PROSODYCTL_BIN choose it; prosody_host.prosody_version() outside fixtures)

Every server a fixture makes is stopped after the test and its log is
checked for tracebacks; opt out with @pytest.mark.allow_tracebacks or
server.check_tracebacks = False (or allow specific lines: server.allow_log(regex)).

PostgreSQL: with $E2E_POSTGRES ("host=127.0.0.1 port=N user=U", a postgres.PostgresServer of the
run) servers can use storage="postgres" (a database each); $E2E_SQL_DRIVER=PostgreSQL makes
storage="sql" mean PostgreSQL and $E2E_DEFAULT_STORAGE=sql makes it the default; test_postgres.py
is collected only then. test_rock.py likewise only with $E2E_ROCK (the binary rock to install), and
test_browser_*.py only with $E2E_BROWSER (the browser tiers).

@pytest.mark.only_on("13", reason="...") (or "0.12", or several versions) skips a test on the
other releases, with the reason; a version matches a release it is a prefix of ("13" -> 13.0.1).

Tests for the deliberate differences from stock (README "Stock defects fixed", numbered) are
marked @pytest.mark.deliberate_fix(N) and are expected to FAIL when run
with INVITES_IMPL=stock: they are not skipped there.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# The helpers (prosody, client, rawxmpp) live beside this file; make them
# importable whatever pytest's import mode is.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prosody import ProsodyServer  # noqa: E402
from prosody_host import default_impl, prosody_version, prosody_version_string  # noqa: E402

DEFAULT_TEST_TIMEOUT = 120


def pytest_configure(config):
    config.addinivalue_line("markers", "allow_tracebacks: do not fail the test on tracebacks in the server log")
    config.addinivalue_line(
        "markers", "deliberate_fix(n): checks README 'Stock defects fixed' item n; a strict expected failure against stock"
    )
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line(
        "markers", "only_on(*versions, reason): run only on these Prosody releases (\"13\", \"0.12\"), else skip"
    )


def pytest_ignore_collect(collection_path, config):
    # PostgreSQL-only tests: collected in the PostgreSQL tiers (tools/run-tests.py), which name a
    # server in $E2E_POSTGRES; elsewhere they are not part of the suite at all.
    if collection_path.name == "test_postgres.py" and not os.environ.get("E2E_POSTGRES"):
        return True
    # The rock installed with prosodyctl: in the rock tiers, which name it in $E2E_ROCK.
    if collection_path.name == "test_rock.py" and not os.environ.get("E2E_ROCK"):
        return True
    # A real browser: in the browser tiers, which set $E2E_BROWSER.
    if collection_path.name.startswith("test_browser_") and not os.environ.get("E2E_BROWSER"):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    # A test must never hang: give each one a ceiling when pytest-timeout is installed.
    if config.pluginmanager.hasplugin("timeout"):
        for item in items:
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT))
    # Against the stock modules each deliberate fix must fail: a pass would mean the test does not
    # show the defect it is about.
    # deliberate_fix(N, stock_fixed_in="13"): stock fixed it in that release, where it must pass.
    if default_impl() == "stock":
        for item in items:
            fix = item.get_closest_marker("deliberate_fix")
            fixed_in = fix and fix.kwargs.get("stock_fixed_in")
            if fix is not None and not (fixed_in and prosody_version() >= tuple(int(p) for p in fixed_in.split("."))):
                what = fix.args[0] if fix.args else "?"
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"stock defect {what}, fixed by ours"))


def pytest_report_header(config):
    return f"invites e2e: impl={default_impl()}, Prosody {prosody_version_string()}"


def version_matches(want: str, version: tuple) -> bool:
    """Does a version prefix ("13", "0.12", "13.0.1") name this release?"""
    parts = tuple(int(p) for p in want.split("."))
    return version[: len(parts)] == parts


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("only_on")
    if marker is None:
        return
    if not marker.args:
        raise ValueError(f"{item.nodeid}: only_on needs at least one version")
    version = prosody_version()
    if not any(version_matches(str(v), version) for v in marker.args):
        reason = marker.kwargs.get("reason", "")
        want = " or ".join(str(v) for v in marker.args)
        pytest.skip(f"only on Prosody {want}, this is {prosody_version_string()}" + (f": {reason}" if reason else ""))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="session")
def e2e_base_dir(request):
    """One directory per test session under the system temp dir.

    Not pytest's tmp_path: /tmp/pytest-of-root is 0700, which the prosody
    user cannot traverse. Removed at the end unless a test failed or
    E2E_KEEP_TMP=1 (then its path is printed).
    """
    base = Path(tempfile.mkdtemp(prefix="invites-e2e-"))
    os.chmod(base, 0o755)
    yield base
    failed = request.session.testsfailed
    if failed or os.environ.get("E2E_KEEP_TMP"):
        print(f"\ne2e: server directories kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


_dir_counter = itertools.count(1)


@pytest.fixture
def tmp(e2e_base_dir, request) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:40]
    path = e2e_base_dir / f"{next(_dir_counter):03d}-{name}"
    path.mkdir()
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def impl() -> str:
    return default_impl()


@pytest.fixture(scope="session")
def host_version() -> tuple:
    """The Prosody release under test: (0, 12, 3), (13, 0, 1), ..."""
    return prosody_version()


@pytest.fixture
def make_server(tmp, request):
    """make_server(start=True, **kwargs) -> ProsodyServer (kwargs as ProsodyServer())."""
    servers: list[ProsodyServer] = []
    counter = itertools.count(1)

    def factory(*, start: bool = True, **kwargs) -> ProsodyServer:
        n = next(counter)
        kwargs.setdefault("name", f"srv{n}")
        srv = ProsodyServer(tmp / f"srv{n}", **kwargs)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield factory

    problems = []
    for srv in servers:
        try:
            srv.stop()
        except Exception as e:  # keep stopping the others
            problems.append(f"{srv!r}: stop failed: {e}")
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for srv in servers:
            print(f"\n===== {srv!r} =====\n{srv.diagnostics(80)}")
    check = request.node.get_closest_marker("allow_tracebacks") is None
    for srv in servers:
        if check and srv.check_tracebacks:
            found = srv.tracebacks()
            if found:
                problems.append(
                    f"{srv!r}: server log {srv.log_path} has error/traceback lines:\n" + "\n".join(found[:20])
                )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def server(make_server) -> ProsodyServer:
    """A started server: default modules, VirtualHost "localhost", invite-only registration."""
    return make_server()
