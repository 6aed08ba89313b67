"""Run a private Prosody for end-to-end tests.

Each ProsodyServer owns one directory holding its configuration, data,
log, pid file and admin socket, listens on free loopback ports chosen at
run time, and is stopped by the pid this module started. Nothing here
reads or writes the system configuration (/etc/prosody) or data
(/var/lib/prosody): every prosody/prosodyctl call gets --config.

Implementation switch: impl="ours" puts this project's plugin directory
first in plugin_paths, impl="stock" leaves it out so the modules that ship
with Prosody are used. The default comes from $INVITES_IMPL.

Host switch: $PROSODY_BIN / $PROSODYCTL_BIN name the launchers (default the
system's `prosody`/`prosodyctl`, Debian's 0.12); host_env("13") gives the
values for the Prosody 13 that tools/prosody13.sh unpacks under
target/prosody13. prosody_version() says which release they run.
"""

from __future__ import annotations

import atexit
import collections
import functools
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path

import postgres
from process import stop_process

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parent.parent
TEST_MODULES_DIR = E2E_DIR / "modules"


def plugin_dir() -> Path:
    """Where `make` puts our plugin directory ($INVITES_PLUGIN_DIR overrides)."""
    return Path(os.environ.get("INVITES_PLUGIN_DIR") or REPO_ROOT / "target" / "plugins").resolve()


def default_impl() -> str:
    impl = os.environ.get("INVITES_IMPL", "ours").strip() or "ours"
    if impl not in ("ours", "stock"):
        raise ValueError(f"INVITES_IMPL must be 'ours' or 'stock', not {impl!r}")
    return impl


def is_stock(server_or_impl) -> bool:
    """True for a server (or impl name) running Prosody's own modules."""
    return getattr(server_or_impl, "impl", server_or_impl) == "stock"


def default_storage() -> str:
    """Storage of servers that do not name one: $E2E_DEFAULT_STORAGE, else "internal"."""
    return os.environ.get("E2E_DEFAULT_STORAGE", "").strip() or "internal"


def sql_driver() -> str:
    """What storage="sql" means: "SQLite3" (default) or "PostgreSQL" ($E2E_SQL_DRIVER)."""
    driver = os.environ.get("E2E_SQL_DRIVER", "").strip() or "SQLite3"
    if driver not in ("SQLite3", "PostgreSQL"):
        raise ValueError(f"E2E_SQL_DRIVER must be SQLite3 or PostgreSQL, not {driver!r}")
    return driver


def storage_kind(storage: str) -> str:
    """"internal", "sqlite" or "postgres": what a server's storage setting amounts to here."""
    if storage == "internal":
        return "internal"
    if storage == "sql":
        return "postgres" if sql_driver() == "PostgreSQL" else "sqlite"
    if storage in ("postgres", "postgresql"):
        return "postgres"
    raise ValueError(f"unknown storage {storage!r} (internal, sql or postgres)")


def postgres_conninfo() -> dict:
    """The PostgreSQL server of this run ($E2E_POSTGRES, set by tools/run-tests.py's PostgreSQL
    tiers from a postgres.PostgresServer)."""
    text = os.environ.get(postgres.ENV, "").strip()
    if not text:
        raise ServerError(f"PostgreSQL storage needs ${postgres.ENV} (\"host=127.0.0.1 port=N user=U\"), "
                          "set by the PostgreSQL tiers of tools/run-tests.py")
    return postgres.parse_conninfo(text)


# The Prosody 13 prefix tools/prosody13.sh fills (Debian's bookworm-backports packages unpacked).
PROSODY13_ROOT = REPO_ROOT / "target" / "prosody13" / "root"
SYSTEM_MODULES_DIR = Path("/usr/lib/prosody/modules")


def prosody_bin() -> str:
    """The prosody launcher servers are started with ($PROSODY_BIN, default the system's)."""
    return os.environ.get("PROSODY_BIN") or "prosody"


def prosodyctl_bin() -> str:
    """The prosodyctl launcher ($PROSODYCTL_BIN, default the system's)."""
    return os.environ.get("PROSODYCTL_BIN") or "prosodyctl"


def host_env(host: str) -> dict:
    """Environment selecting one of the two test hosts for the harness:
    "12" is the system's Prosody (Debian bookworm's 0.12), "13" the Prosody 13 in target/prosody13.
    Sets the launchers and COMMUNITY_MODULES_DIR (where that host's prosody-modules live)."""
    if host in ("12", "0.12"):
        return {"PROSODY_BIN": "prosody", "PROSODYCTL_BIN": "prosodyctl",
                "COMMUNITY_MODULES_DIR": str(SYSTEM_MODULES_DIR)}
    if host == "13":
        bin_dir = PROSODY13_ROOT / "usr" / "bin"
        return {"PROSODY_BIN": str(bin_dir / "prosody"), "PROSODYCTL_BIN": str(bin_dir / "prosodyctl"),
                "COMMUNITY_MODULES_DIR": str(PROSODY13_ROOT / "usr" / "lib" / "prosody" / "modules")}
    raise ValueError(f"unknown Prosody host {host!r} (12 or 13)")


def use_host(host: str) -> None:
    """Select a test host for this process and the servers it starts (before starting any)."""
    env = host_env(host)
    if host == "13" and not Path(env["PROSODYCTL_BIN"]).is_file():
        raise ServerError(f"{env['PROSODYCTL_BIN']} is missing: run `make prosody13` (tools/prosody13.sh)")
    os.environ.update(env)


def source_dir(launcher: str | None = None) -> Path:
    """Prosody's source directory as its launcher sets it (the CFG_SOURCEDIR line)."""
    path = shutil.which(launcher or prosodyctl_bin())
    if not path:
        raise ServerError(f"{launcher or prosodyctl_bin()} not found")
    m = re.search(r"^CFG_SOURCEDIR\s*=\s*['\"]([^'\"]+)['\"]", Path(path).read_text(errors="replace"), re.M)
    return Path(m.group(1)) if m else Path("/usr/lib/prosody")


@functools.lru_cache(maxsize=None)
def _version_of(launcher: str) -> str:
    # What Prosody itself reads at start-up (util/startup.lua): CFG_SOURCEDIR/prosody.version.
    # Never run the launcher to ask: without --config it would use the system configuration.
    return (source_dir(launcher) / "prosody.version").read_text().strip()


def prosody_version_string() -> str:
    """The release the configured launchers run, e.g. "0.12.3" or "13.0.1"."""
    return _version_of(prosodyctl_bin())


def prosody_version() -> tuple:
    """prosody_version_string() as a tuple of ints: (0, 12, 3), (13, 0, 1)."""
    return tuple(int(p) for p in re.findall(r"\d+", prosody_version_string())[:3])


def is_prosody13() -> bool:
    return prosody_version() >= (13,)

# Loaded on every host unless a test passes its own list.
DEFAULT_MODULES = (
    "roster",
    "saslauth",
    "disco",
    "adhoc",
    "http",
    "admin_shell",
    "invites",
    "invites_register",
    "invites_adhoc",
    "invites_testapi",
)

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
STOP_TIMEOUT = 10.0


class ServerError(RuntimeError):
    pass


class _PortTaken(ServerError):
    pass


class ApiError(RuntimeError):
    """A mod_invites function raised inside the server (or the API call failed)."""

    def __init__(self, fn, status, error, traceback=None):
        self.fn, self.status, self.error, self.traceback = fn, status, error, traceback
        detail = f"\n{traceback}" if traceback else ""
        super().__init__(f"api {fn!r} failed (HTTP {status}): {error}{detail}")


# --------------------------------------------------------------------------
# Lua config serializer


class LuaRaw:
    """A value written into the config verbatim (a Lua expression)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"LuaRaw({self.text!r})"


_LUA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LUA_KEYWORDS = frozenset(
    "and break do else elseif end false for function goto if in local nil not or "
    "repeat return then true until while".split()
)


def lua_string(s: str) -> str:
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif code < 32 or code == 127:
            out.append(f"\\{code:03d}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_lua(value, indent: int = 0) -> str:
    """Python value -> Lua expression (str, int, float, bool, None, list/tuple/set, dict, LuaRaw)."""
    pad = "\t" * (indent + 1)
    if isinstance(value, LuaRaw):
        return value.text
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot write {value!r} into a Lua config")
        return repr(value)
    if isinstance(value, (str, Path)):
        return lua_string(str(value))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        if not items:
            return "{}"
        return "{ " + ", ".join(to_lua(v, indent + 1) for v in items) + " }"
    if isinstance(value, dict):
        if not value:
            return "{}"
        parts = []
        for k, v in value.items():
            if isinstance(k, str) and _LUA_NAME.match(k) and k not in _LUA_KEYWORDS:
                key = k
            elif isinstance(k, (str, int)) and not isinstance(k, bool):
                key = "[" + to_lua(k) + "]"
            else:
                raise TypeError(f"unsupported Lua table key {k!r}")
            parts.append(f"{pad}{key} = {to_lua(v, indent + 1)};")
        return "{\n" + "\n".join(parts) + "\n" + "\t" * indent + "}"
    raise TypeError(f"cannot write {type(value).__name__} into a Lua config: {value!r}")


def lua_assignments(options: dict, indent: int = 0) -> str:
    lines = []
    for key, value in options.items():
        if not _LUA_NAME.match(key):
            raise ValueError(f"bad config option name {key!r}")
        lines.append("\t" * indent + f"{key} = {to_lua(value, indent)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# helpers


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


def shell_generate_words(host: str, flags) -> list:
    """`mod_invites generate HOST FLAGS` as Prosody 13's admin-shell command words:
    --reset USER -> invite create_reset USER@HOST; otherwise invite create_account HOST, with
    --admin as a first `--role prosody:admin` (what 13's handler does with its own, undeclared,
    admin flag); --role, --group and --expires-after pass through."""
    flags = list(flags)
    if "--reset" in flags:
        i = flags.index("--reset")
        user = flags[i + 1]
        del flags[i:i + 2]
        return ["invite", "create_reset", f"{user}@{host}", *flags]
    if "--admin" in flags:
        flags.remove("--admin")
        flags[:0] = ["--role", "prosody:admin"]
    return ["invite", "create_account", host, *flags]


CtlResult = collections.namedtuple("CtlResult", "returncode stdout stderr")
ShellResult = collections.namedtuple("ShellResult", "ok text returncode stdout stderr")
HttpResponse = collections.namedtuple("HttpResponse", "status headers body")


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


# --------------------------------------------------------------------------


class ProsodyServer:
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

    # ---------------------------------------------------------------- config

    @property
    def host(self) -> str:
        return next(iter(self.hosts))

    def plugin_paths(self) -> list[str]:
        paths = []
        if self.impl == "ours":
            paths.append(str(plugin_dir()))
        paths.append(str(TEST_MODULES_DIR))
        paths.extend(self.extra_plugin_paths)
        return paths

    def global_options(self) -> dict:
        opts = {
            "run_as_root": True,
            "daemonize": False,
            "pidfile": str(self.pid_path),
            "data_path": str(self.data_dir),
            "plugin_paths": self.plugin_paths(),
            "admin_socket": str(self.socket_path),
            "certificates": str(self.certs_dir),
            "log": [{"levels": {"min": "debug"}, "to": "file", "filename": str(self.log_path)}],
            "interfaces": ["127.0.0.1"],
            "local_interfaces": ["127.0.0.1"],
            "c2s_ports": [self.c2s_port],
            "c2s_direct_tls_ports": [],
            "legacy_ssl_ports": [],
            "s2s_ports": [],
            "s2s_direct_tls_ports": [],
            "component_ports": [],
            "http_ports": [self.http_port],
            "http_interfaces": ["127.0.0.1"],
            "https_ports": [],
            "https_interfaces": [],
            "c2s_require_encryption": False,
            "s2s_require_encryption": False,
            "allow_unencrypted_plain_auth": True,
            "authentication": "internal_hashed",
            "allow_registration": True,
            "modules_enabled": self.modules,
            "use_dane": False,
        }
        if is_prosody13():
            # Deprecated on 13 (prosodyctl check config): -F does what daemonize = false did, and
            # legacy_ssl_ports is c2s_direct_tls_ports, already empty.
            del opts["daemonize"], opts["legacy_ssl_ports"]
            # 13 adds this to Lua's module search paths; its default is under the system data dir.
            opts["installer_plugin_path"] = str(self.data_dir / "custom_plugins")
        kind = storage_kind(self.storage)
        if kind == "sqlite":
            opts["storage"] = "sql"
            opts["sql"] = {"driver": "SQLite3", "database": str(self.sqlite_path)}
        elif kind == "postgres":
            opts["storage"] = "sql"
            opts["sql"] = self.postgres_sql_options()
        else:
            opts["storage"] = "internal"
        opts.update(self.options)
        return opts

    def postgres_sql_options(self) -> dict:
        """The `sql` option for this server's own PostgreSQL database (created on first use;
        kept across restarts and reconfigure())."""
        conninfo = postgres_conninfo()
        if self.postgres_database is None:
            self.postgres_database = postgres.create_database(conninfo)
        return postgres.prosody_sql_options(conninfo, self.postgres_database)

    def render_config(self) -> str:
        parts = [
            f"-- Generated by spec/e2e/prosody.py for a test run (impl={self.impl}).",
            "-- Private to this directory; never the system configuration.",
            "",
            lua_assignments(self.global_options()),
            "",
        ]
        for host, opts in self.hosts.items():
            parts.append(f"VirtualHost {lua_string(host)}")
            opts = self.host_options_for_release(opts)
            if opts:
                parts.append(lua_assignments(opts, indent=1))
            parts.append("")
        for host, (module_name, opts) in self.components.items():
            parts.append(f"Component {lua_string(host)} {lua_string(module_name)}")
            if opts:
                parts.append(lua_assignments(opts, indent=1))
            parts.append("")
        return "\n".join(parts)

    @staticmethod
    def host_options_for_release(opts: dict) -> dict:
        """A VirtualHost's options as this Prosody release needs them. On 13 the roles that
        `test_roles` (spec/e2e/modules/mod_test_adhoc_roles.lua) gives must exist: they are
        declared with custom_roles, each inheriting prosody:registered (unless the host
        declares its own)."""
        roles = sorted({r for rs in (opts.get("test_roles") or {}).values() for r in rs if not r.startswith("prosody:")})
        if not roles or "custom_roles" in opts or not is_prosody13():
            return opts
        declared = [{"name": r, "priority": 30, "inherits": ["prosody:registered"]} for r in roles]
        return {**opts, "custom_roles": declared}

    def write_config(self) -> None:
        self.config_path.write_text(self.render_config())
        os.chmod(self.config_path, 0o644)

    def reconfigure(self, *, impl=None, hosts=None, modules=None, options=None, storage=None):
        """Change settings (while stopped, or followed by restart())."""
        if impl is not None:
            self.impl = impl
        if hosts is not None:
            self.hosts = dict(hosts)
        if modules is not None:
            self.modules = list(modules)
        if options is not None:
            self.options = dict(options)
        if storage is not None:
            self.storage = storage
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
        """Stop, optionally switch implementation/settings, start on the same data."""
        self.stop()
        self.reconfigure(impl=impl, **changes)
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------- utilities

    def has_module(self, name: str) -> bool:
        """Is mod_<name> configured on at least one VirtualHost?"""
        return any(self.host_has_module(name, h) for h in self.hosts)

    def host_has_module(self, name: str, host: str | None = None) -> bool:
        """Is mod_<name> configured on this VirtualHost (global list merged with the host's)?"""
        opts = self.hosts.get(host or self.host, {})
        enabled = set(self.options.get("modules_enabled", self.modules)) | set(opts.get("modules_enabled") or ())
        disabled = set(self.options.get("modules_disabled") or ()) | set(opts.get("modules_disabled") or ())
        return name in enabled and name not in disabled

    def api_host(self) -> str | None:
        """First VirtualHost that serves the test API (None if none does)."""
        return next((h for h in self.hosts if self.host_has_module("invites_testapi", h)), None)

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

    # ------------------------------------------------------------ prosodyctl

    def prosodyctl(self, *args, timeout: float = 30, input: str | None = None) -> CtlResult:
        """prosodyctl --config <ours> ARGS... -> (returncode, stdout, stderr)."""
        try:
            cp = subprocess.run(
                [prosodyctl_bin(), "--config", str(self.config_path), *map(str, args)],
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=self.dir,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"prosodyctl {' '.join(map(str, args))} timed out after {timeout}s; "
                f"output so far: {e.stdout!r} {e.stderr!r}"
            ) from None
        return CtlResult(cp.returncode, cp.stdout, cp.stderr)

    def generate_invite(self, host: str | None = None, *flags) -> str:
        """prosodyctl mod_invites generate HOST FLAGS...; returns the printed URL/URI (last line).

        Stock 13 has no `generate` (it prints a deprecation notice and exits 1): on a stock server
        on 13 the same invite comes from 13's own command line, the admin shell of the running
        server (shell_generate_words() maps the flags)."""
        if is_stock(self) and is_prosody13():
            res = self.shell(*shell_generate_words(host or self.host, flags))
            if not res.ok:
                raise AssertionError(f"shell {shell_generate_words(host or self.host, flags)} failed: "
                                     f"{res.text}\n{res.stdout}{res.stderr}")
            links = [ln.strip() for ln in [res.text, *res.stdout.splitlines()]
                     if ln.strip().startswith(("xmpp:", "http://", "https://"))]
            assert links, f"no invite link in the shell's output: {res.stdout}"
            return links[0]
        res = self.prosodyctl("mod_invites", "generate", host or self.host, *flags)
        if res.returncode != 0:
            raise AssertionError(f"generate failed ({res.returncode}): {res.stdout}{res.stderr}")
        return last_line(res.stdout)

    def shell(self, *words: str, timeout: float = 20) -> ShellResult:
        """One admin-shell command against the running server.

        shell(LINE) runs `prosodyctl --config CFG shell LINE`: the client sends
        LINE as-is (Lua, e.g. 'invite:create_account("localhost")'), prints
        "OK: ..."/"Result: ..." on stdout, or the error on stderr with a
        non-zero exit status (0.12: 1; 13: the number of errors). Lines the
        command printed before its result come first on stdout.
        shell(WORD, WORD, ...) passes the words separately, 13's command form
        (`shell invite create_account localhost --role x`); 0.12 turns it into
        a Lua call with string arguments.
        Returns (ok, text, returncode, stdout, stderr); text is the result
        line with the "OK: "/"Error: " prefix removed.
        """
        if not words:
            raise ValueError("shell() needs a line or words")
        res = self.prosodyctl("shell", *words, timeout=timeout)
        out, err = res.stdout.strip(), res.stderr.strip()
        if res.returncode == 0 and not err:
            text = out.splitlines()[-1] if out else ""
            for prefix in ("OK: ", "Result: "):
                if text.startswith(prefix):
                    text = text[len(prefix):]
                    break
            return ShellResult(True, text, res.returncode, res.stdout, res.stderr)
        text = err or out
        text = text.splitlines()[-1] if text else ""
        for prefix in ("! Error: ", "Error: ", "! "):
            if text.startswith(prefix):
                text = text[len(prefix):]
                break
        return ShellResult(False, text, res.returncode, res.stdout, res.stderr)

    def shell_lines(self, *lines: str, timeout: float = 20) -> list[ShellResult]:
        """Several admin-shell commands on one connection (prosodyctl shell fed on stdin).

        The interactive client echoes a prompt per command and prefixes
        results with "| " (ok) or "! " (error); output is split per prompt.
        """
        res = self.prosodyctl("shell", "--quiet", input="".join(line + "\n" for line in lines),
                              timeout=timeout)
        chunks: list[list[str]] = []
        for raw in res.stdout.splitlines():
            # Without lua-readline the prompt is written with no newline, so a result can follow
            # it on the same line ("prosody> | OK: ..."); with readline it stands alone.
            while raw.startswith("prosody>"):
                chunks.append([])
                raw = raw[len("prosody>"):].lstrip(" ")
            if chunks and raw.startswith(("| ", "! ")):
                chunks[-1].append(raw)
        results = []
        for chunk in chunks[: len(lines)]:
            final = chunk[-1] if chunk else ""
            ok = final.startswith("| ")
            text = final[2:]
            for prefix in ("OK: ", "Result: ", "Error: "):
                if text.startswith(prefix):
                    text = text[len(prefix):]
                    break
            results.append(ShellResult(ok, text, res.returncode, "\n".join(chunk), res.stderr))
        if len(results) != len(lines):
            raise AssertionError(f"could not parse shell output for {lines!r}:\n{res.stdout}{res.stderr}")
        return results

    # ----------------------------------------------------------------- users

    def create_user(self, username: str, password: str, host: str | None = None) -> None:
        """Create an account directly (test API when loaded, else prosodyctl register)."""
        host = host or self.host
        if self.host_has_module("invites_testapi", host) and self.running:
            ok = self.api1("create_user", username, password, host=host)
            if not ok:
                raise AssertionError(f"could not create {username}@{host}")
            return
        res = self.prosodyctl("register", username, host, password)
        if res.returncode != 0:
            raise AssertionError(f"prosodyctl register {username} {host} failed: {res.stdout}{res.stderr}")

    # ------------------------------------------------------------------ http

    def http_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def http_request(self, method: str, path: str, *, host: str | None = None, body: bytes | None = None,
                     headers: dict | None = None, timeout: float = 10) -> HttpResponse:
        """HTTP to the server's loopback port with a Host header naming the virtual host.

        Never follows redirects and never raises for HTTP error statuses.
        """
        hdrs = {"Host": host or self.host}
        hdrs.update(headers or {})
        req = urllib.request.Request(self.http_url(path), data=body, headers=hdrs, method=method)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
        try:
            with opener.open(req, timeout=timeout) as resp:
                return HttpResponse(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as e:
            with e:
                return HttpResponse(e.code, dict(e.headers), e.read())

    def http_get(self, path: str, *, host: str | None = None, timeout: float = 10) -> HttpResponse:
        return self.http_request("GET", path, host=host, timeout=timeout)

    # ------------------------------------------------------------------- api

    def api(self, fn: str, *args, host: str | None = None, timeout: float = 10) -> list:
        """Call fn in mod_invites' environment on `host` (or a test helper of
        mod_invites_testapi); returns the list of all return values, JSON-decoded
        (nil -> None; an empty Lua table comes back as {}). Iterators are
        drained into [[key, value], ...]. Arguments: None -> nil, list -> sequence,
        dict -> table.
        Raises ApiError when the call raised inside the server.
        """
        host = host or self.host
        payload = json.dumps({"fn": fn, "args": list(args), "nargs": len(args), "host": host}).encode()
        resp = self.http_request(
            "POST", "/invites_testapi", host=host, body=payload,
            headers={"Content-Type": "application/json"}, timeout=timeout,
        )
        if resp.status == 404 and not self.host_has_module("invites_testapi", host):
            raise ApiError(fn, 404, f"mod_invites_testapi is not loaded on {host}")
        try:
            data = json.loads(resp.body.decode() or "null")
        except ValueError:
            raise ApiError(fn, resp.status, f"non-JSON reply: {resp.body[:300]!r}") from None
        if resp.status != 200 or not isinstance(data, dict) or "results" not in data:
            err = data.get("error") if isinstance(data, dict) else data
            tb = data.get("traceback") if isinstance(data, dict) else None
            raise ApiError(fn, resp.status, err, tb)
        return data["results"]

    def api1(self, fn: str, *args, **kw):
        """api() but only the first return value."""
        results = self.api(fn, *args, **kw)
        return results[0] if results else None

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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
