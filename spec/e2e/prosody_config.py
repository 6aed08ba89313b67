"""The configuration file of a test server: what ProsodyServer's settings (hosts, components,
modules, options, storage, implementation) become as prosody.cfg.lua."""

from __future__ import annotations

import os

import postgres
from lua_config import lua_assignments, lua_string
from prosody_host import E2E_DIR, ServerError, is_prosody13, plugin_dir

TEST_MODULES_DIR = E2E_DIR / "modules"

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


class ConfigMixin:
    """ProsodyServer's configuration side (its attributes are set in ProsodyServer.__init__)."""

    @property
    def host(self) -> str:
        return next(iter(self.hosts))

    def storage_layout(self) -> str:
        """Where invites are stored: "records" (ours by default) or "stock"."""
        if self.impl != "ours":
            return "stock"
        hosts = [opts.get("invites_storage_layout") for opts in self.hosts.values()]
        return next((h for h in hosts if h), None) or self.options.get("invites_storage_layout") \
            or os.environ.get("E2E_STORAGE_LAYOUT", "").strip() or "records"

    def invite_store(self) -> str:
        """The store that holds host-level invites in this server's layout."""
        return "invite_token" if self.storage_layout() == "stock" else "invites"

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
        # The storage layout of our modules: $E2E_STORAGE_LAYOUT (the stock-layout tiers), else
        # their default. The stock modules keep the stock layout; the test API reads this option
        # to know where invites are.
        layout = "stock" if self.impl != "ours" else os.environ.get("E2E_STORAGE_LAYOUT", "").strip()
        if layout:
            opts["invites_storage_layout"] = layout
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
            f"-- Generated by spec/e2e/prosody_config.py for a test run (impl={self.impl}).",
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

    # ---------------------------------------------- which modules a host loads

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
