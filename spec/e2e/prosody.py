"""Run a private Prosody for end-to-end tests.

Each ProsodyServer owns one directory holding its configuration, data,
log, pid file and admin socket, listens on free loopback ports chosen at
run time, and is stopped by the pid this module started. Nothing here
reads or writes the system configuration (/etc/prosody) or data
(/var/lib/prosody): every prosody/prosodyctl call gets --config.

This module has the server's process and log; the rest of ProsodyServer
comes from prosody_config (the configuration file), prosody_ctl
(prosodyctl, admin shell) and prosody_http (HTTP, test API). Which Prosody
runs and which invite modules it loads: prosody_host.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

from process import stop_process
from prosody_config import DEFAULT_MODULES, ConfigMixin, default_storage
from prosody_ctl import CtlMixin
from prosody_host import ServerError, default_impl, plugin_dir, prosody_bin
from prosody_http import HttpMixin

# Lines in the server log that mean a bug, whatever the test checks.
TRACEBACK_PATTERNS = (
    r"stack traceback",
    r"Traceback\[",
    r"Error initializing module",
    r"Unable to load module",
    r"Failed to load module",
    r"Error loading module",
    r"error in .*handler",
)

START_TIMEOUT = float(os.environ.get("E2E_START_TIMEOUT", "15"))


class _PortTaken(ServerError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _prosody_ids():
    try:
        pw = pwd.getpwnam("prosody")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return None


def make_traversable(path: Path) -> None:
    """chmod o+rx on path and its parents inside the system temp dir.

    Only needed if prosodyctl ever runs as the prosody user (it does not
    while run_as_root = true); never touches anything outside the temp dir.
    """
    path = Path(path).resolve()
    tmp = Path(tempfile.gettempdir()).resolve()
    for p in [path, *path.parents]:
        if p == tmp or tmp not in p.parents:
            break
        mode = p.stat().st_mode
        if mode & 0o005 != 0o005:
            os.chmod(p, (mode & 0o7777) | 0o005)


def give_to_prosody_user(path: Path) -> None:
    """Make a directory usable by the prosody user as well as by root."""
    ids = _prosody_ids()
    os.chmod(path, 0o770)
    if ids and os.geteuid() == 0:
        os.chown(path, *ids)


class ProsodyServer(ConfigMixin, CtlMixin, HttpMixin):
    """One private Prosody instance.

    hosts: {"localhost": {option: value, ...}} — per-VirtualHost options; a
      host's own "modules_enabled"/"modules_disabled" add to/remove from the
      global list (Prosody merges them).
    components: {"muc.localhost": ("muc", {options})}.
    modules: global modules_enabled (default DEFAULT_MODULES).
    options: extra global options (override the harness defaults).
    storage: "internal", "sql" (SQLite file in the data directory, or PostgreSQL when
      $E2E_SQL_DRIVER=PostgreSQL) or "postgres" (a database of its own on the PostgreSQL server
      $E2E_POSTGRES names, created at the first config write). Default: $E2E_DEFAULT_STORAGE,
      else "internal". See storage_kind().
    plugin_paths: extra plugin directories searched after ours and the
      test-module directory.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        impl: str | None = None,
        hosts: dict | None = None,
        components: dict | None = None,
        modules=None,
        options: dict | None = None,
        storage: str | None = None,
        plugin_paths=(),
        name: str = "prosody",
    ):
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="invites-e2e-")
        self.dir = Path(workdir).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        make_traversable(self.dir)
        self.name = name
        self.impl = impl or default_impl()
        if self.impl not in ("ours", "stock"):
            raise ValueError(f"impl must be 'ours' or 'stock', not {self.impl!r}")
        self.hosts = dict(hosts) if hosts is not None else {"localhost": {}}
        self.components = dict(components or {})
        self.modules = list(DEFAULT_MODULES if modules is None else modules)
        self.options = dict(options or {})
        self.storage = storage or default_storage()
        self.postgres_database: str | None = None
        self.extra_plugin_paths = [str(Path(p).resolve()) for p in plugin_paths]

        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(exist_ok=True)
        give_to_prosody_user(self.data_dir)
        self.certs_dir = self.dir / "certs"
        self.certs_dir.mkdir(exist_ok=True)
        self.config_path = self.dir / "prosody.cfg.lua"
        self.log_path = self.dir / "prosody.log"
        self.stdout_path = self.dir / "prosody.stdout"
        self.pid_path = self.dir / "prosody.pid"
        self.socket_path = self.dir / "admin.sock"
        self.sqlite_path = self.data_dir / "prosody.sqlite"
        if len(str(self.socket_path)) > 100:
            raise ValueError(f"admin socket path too long for a unix socket: {self.socket_path}")

        self.c2s_port, self.http_port = free_ports(2)
        self.proc: subprocess.Popen | None = None
        self._stdout = None
        self.check_tracebacks = True
        self.allowed_log_patterns: list[str] = []
        self.write_config()

    # ------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = START_TIMEOUT) -> "ProsodyServer":
        if self.running:
            raise ServerError("server already running")
        if self.impl == "ours" and not (plugin_dir() / "mod_invites.lua").is_file():
            # Without this check Prosody would silently fall back to its own
            # modules and a stock run would pass for ours.
            raise ServerError(
                f"impl=ours but {plugin_dir()}/mod_invites.lua does not exist: build the plugin "
                "directory first (make), point INVITES_PLUGIN_DIR at it, or run with INVITES_IMPL=stock"
            )
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                # Someone grabbed a port between choosing and binding it.
                self.c2s_port, self.http_port = free_ports(2)
        raise ServerError("could not bind free ports after 3 attempts\n" + self.diagnostics())

    def _start_once(self, timeout: float) -> "ProsodyServer":
        self.write_config()
        self._stdout = open(self.stdout_path, "ab")
        self._log_offset_at_start = len(self.log_text())
        self.proc = subprocess.Popen(
            [prosody_bin(), "-F", "--config", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            start_new_session=True,
        )
        _live_servers.add(self)
        try:
            self._wait_ready(timeout)
            self._check_impl()
        except BaseException:
            self._terminate()
            raise
        return self

    def _check_impl(self) -> None:
        """Make sure the invite modules really come from the implementation under test."""
        expected = plugin_dir() if self.impl == "ours" else None
        for host in self.hosts:
            if not self.host_has_module("invites_testapi", host):
                continue
            paths = self.api1("module_paths", host=host) or {}
            for name in ("invites", "invites_register", "invites_adhoc"):
                path = paths.get(name)
                if not path:
                    continue
                from_ours = Path(path).resolve().parent == expected if expected else False
                if (self.impl == "ours") != from_ours:
                    raise ServerError(f"impl={self.impl} but mod_{name} on {host} was loaded from {path}")

    def module_path(self, name: str, host: str | None = None) -> str | None:
        """File the running server loaded mod_<name> from on host (None if not loaded)."""
        return (self.api1("module_paths", host=host) or {}).get(name) or None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        c2s_ok = False
        http_wanted = self.has_module("http")
        api_host = self.api_host()
        delay = 0.02
        while True:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"prosody exited with status {self.proc.returncode} during start-up\n"
                    + self.diagnostics()
                )
            if not c2s_ok:
                c2s_ok = _port_open(self.c2s_port)
            if c2s_ok:
                ready = False
                if api_host:
                    # Answered only once the main loop runs, i.e. all hosts are up.
                    try:
                        ready = self.http_get("/invites_testapi/ping", host=api_host, timeout=1).status == 200
                    except OSError:
                        pass
                else:
                    ready = not http_wanted or _port_open(self.http_port)
                # A port we chose may have been taken meanwhile: then the
                # connection above reached someone else's listener.
                if "Failed to open server port" in self.log_text()[self._log_offset_at_start:]:
                    raise _PortTaken()
                if ready:
                    return
            if time.monotonic() > deadline:
                raise ServerError(f"prosody not ready after {timeout}s\n" + self.diagnostics())
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def _terminate(self) -> int | None:
        proc, self.proc = self.proc, None
        rc = stop_process(proc, signal.SIGTERM)
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
        return rc

    def stop(self) -> int | None:
        """SIGTERM the prosody we started (SIGKILL after a timeout); returns its exit status."""
        return self._terminate()

    def restart(self, *, impl=None, **changes) -> "ProsodyServer":
        """Stop, optionally switch implementation/settings, start on the same data. Switching from
        our modules to the stock ones first runs what the README tells operators to run before
        removing ours: `prosodyctl mod_invites migrate HOST --to stock`."""
        self.stop()
        if impl == "stock" and self.impl == "ours":
            for host in self.hosts:
                if self.host_has_module("invites", host):
                    result = self.prosodyctl("mod_invites", "migrate", host, "--to", "stock")
                    if result.returncode != 0:
                        raise ServerError(f"migrate --to stock failed: {result.stdout}{result.stderr}")
        self.reconfigure(impl=impl, **changes)
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------- log

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def diagnostics(self, lines: int = 40) -> str:
        try:
            out = self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            out = ""
        return (
            f"--- config {self.config_path}\n--- stdout/stderr (tail):\n"
            + "\n".join(out.splitlines()[-lines:])
            + f"\n--- log {self.log_path} (tail):\n"
            + self.log_tail(lines)
        )

    def allow_log(self, pattern: str) -> None:
        """Let assert_no_tracebacks() ignore lines matching this regex."""
        self.allowed_log_patterns.append(pattern)

    def tracebacks(self) -> list[str]:
        bad = re.compile("|".join(TRACEBACK_PATTERNS))
        allowed = [re.compile(p) for p in self.allowed_log_patterns]
        found = []
        for line in self.log_text().splitlines():
            if bad.search(line) and not any(a.search(line) for a in allowed):
                found.append(line)
        return found

    def assert_no_tracebacks(self) -> None:
        found = self.tracebacks()
        if found:
            shown = "\n".join(found[:20])
            raise AssertionError(
                f"server log {self.log_path} has {len(found)} error/traceback line(s):\n{shown}"
            )

    def log_mark(self) -> int:
        """Current size of the log text; pass as `since` to wait_for_log()."""
        return len(self.log_text())

    def wait_for_log(self, pattern: str, timeout: float = 5.0, since: int = 0) -> str:
        """Poll the log (from character offset `since`) until a line matches; returns it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_text()[since:].splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line matching {pattern!r} within {timeout}s")
            time.sleep(0.05)

    def __repr__(self):
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<ProsodyServer {self.name} impl={self.impl} c2s={self.c2s_port} http={self.http_port} {state}>"


_live_servers: "weakref.WeakSet[ProsodyServer]" = weakref.WeakSet()


@atexit.register
def _stop_leftover_servers() -> None:
    """Safety net: never leave a prosody we started running after Python exits."""
    for srv in list(_live_servers):
        try:
            srv.stop()
        except Exception:
            pass
