"""Servers for the community-module tests (spec/e2e/test_community_*.py).

Debian's `prosody-modules` puts each community module in its own folder under Prosody's module
directory (/usr/lib/prosody/modules/mod_invites_page/mod_invites_page.lua, ...), which Prosody
searches after the configured plugin_paths; the tests load them from there, unchanged. Each test
host has its own snapshot: $COMMUNITY_MODULES_DIR (prosody_host.host_env() sets it) is Prosody 13's
under target/prosody13, else the system's.

mod_invites_register_web depends on a module named `password_policy`, which the 2023-02 snapshot
(with Prosody 0.12) does not ship; we ship lua/mod_password_policy.lua in our plugin directory.
The 2025-04 snapshot (with Prosody 13) has its own, which ours is not meant to shadow there (README
"Works with"): password_policy_from() says which one a server should load. With INVITES_IMPL=stock
our plugin directory is not on the path, so a stock server on a host without one gets a directory
holding only ours: the stock comparison then differs from ours in the invite modules alone.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from prosody import ProsodyServer
from prosody_config import DEFAULT_MODULES
from prosody_host import REPO_ROOT, SYSTEM_MODULES_DIR, default_impl, is_stock, plugin_dir

# Where the host's prosody-modules (and Prosody's own modules) live.
COMMUNITY_DIR = Path(os.environ.get("COMMUNITY_MODULES_DIR") or SYSTEM_MODULES_DIR)

# Whether our plugin directory's mod_password_policy is meant to win over a community one the host
# ships (on 13; 0.12's snapshot has none). The plan (README "Works with"): no, never shadow one that
# exists. The one switch for that decision; password_policy_from() applies it.
OURS_SHADOWS_COMMUNITY_PASSWORD_POLICY = False

# The community modules under test, each loaded from COMMUNITY_DIR/mod_<name>/mod_<name>.lua.
DEBIAN_COMMUNITY_MODULES = ("invites_page", "register_apps", "invites_register_web", "invites_api", "http_libjs")
COMMUNITY_MODULES = (*DEBIAN_COMMUNITY_MODULES, "password_policy")
# Test-only: records the invite objects events carry (spec/e2e/modules/mod_community_probe.lua).
PROBE = "community_probe"

SITE_NAME = "Community Test"
# Passwords the default policy (8 characters, no username inside) accepts.
GOOD_PASSWORD = "correct-horse-battery"

TOKEN_RE = r"[A-Za-z0-9_-]{16,}"


def require_community_modules() -> None:
    missing = [n for n in DEBIAN_COMMUNITY_MODULES if not (COMMUNITY_DIR / f"mod_{n}" / f"mod_{n}.lua").is_file()]
    if missing:
        pytest.skip(f"Debian's prosody-modules is not installed ({', '.join(missing)} missing under "
                    f"{COMMUNITY_DIR}; apt-get install prosody-modules, or make deps)")


def password_policy_source() -> Path:
    built = plugin_dir() / "mod_password_policy.lua"
    return built if built.is_file() else REPO_ROOT / "lua" / "mod_password_policy.lua"


def community_password_policy() -> Path | None:
    """The host's own community mod_password_policy (13's snapshot has one), or None."""
    path = COMMUNITY_DIR / "mod_password_policy" / "mod_password_policy.lua"
    return path if path.is_file() else None


def password_policy_from(impl: str | None = None) -> str:
    """Which mod_password_policy a server with the community modules should load:
    "community" (the host's own), "ours" (plugin directory) or "only" (a stock server's
    directory holding just ours, see stock_extra_paths)."""
    if community_password_policy() is not None and (is_stock(impl or default_impl())
                                                    or not OURS_SHADOWS_COMMUNITY_PASSWORD_POLICY):
        return "community"
    return "only" if is_stock(impl or default_impl()) else "ours"


def stock_extra_paths(workdir: Path) -> list[Path]:
    """For a stock server: a plugin directory with our mod_password_policy only (none when the
    host ships its own)."""
    if password_policy_from("stock") == "community":
        return []
    only = Path(workdir) / "password-policy-only"
    only.mkdir(parents=True, exist_ok=True)
    link = only / "mod_password_policy.lua"
    if not link.exists():
        link.symlink_to(password_policy_source())
    return [only]


def community_kwargs(workdir: Path, *, modules=(), options: dict | None = None, impl: str | None = None,
                     plugin_paths=(), **kwargs) -> dict:
    """ProsodyServer keyword arguments for a server with the invite modules, the community
    modules and the probe (for make_server(**community_kwargs(tmp)) as well)."""
    require_community_modules()
    opts = {"site_name": SITE_NAME}
    opts.update(options or {})
    impl = impl or default_impl()
    extra = stock_extra_paths(Path(workdir)) if is_stock(impl) else []
    return dict(
        impl=impl,
        modules=[*DEFAULT_MODULES, *COMMUNITY_MODULES, PROBE, *modules],
        options=opts,
        plugin_paths=[*extra, *plugin_paths],
        **kwargs,
    )


def community_server(workdir: Path, **kwargs) -> ProsodyServer:
    """A (not yet started) server with the invite modules, the community modules and the probe."""
    return ProsodyServer(workdir, **community_kwargs(workdir, **kwargs))


def check_module_sources(server: ProsodyServer, host: str | None = None) -> dict:
    """Assert the community modules come from the host's Debian folders and password_policy from
    where password_policy_from() says."""
    paths = server.api1("module_paths", host=host) or {}
    for name in DEBIAN_COMMUNITY_MODULES:
        expected = COMMUNITY_DIR / f"mod_{name}" / f"mod_{name}.lua"
        assert paths.get(name) and Path(paths[name]).resolve() == expected.resolve(), (name, paths.get(name))
    policy = Path(paths.get("password_policy") or "/nonexistent")
    source = password_policy_from(server.impl)
    if source == "community" and not is_stock(server):
        # Prosody finds ours first (plugin_paths), and ours loads the community module in its place.
        assert policy.parent.resolve() == plugin_dir(), policy
        assert f"Loading the community mod_password_policy from {community_password_policy()}" in server.log_text()
    elif source == "community":
        assert policy.resolve() == community_password_policy().resolve(), ("password_policy", policy)
    elif source == "only":
        assert policy.parent.name == "password-policy-only", policy
        assert policy.resolve() == password_policy_source().resolve(), policy
    else:
        assert policy.parent.resolve() == plugin_dir(), policy
    return paths


def module_scoped_server(base: Path, name: str, **kwargs):
    """Generator for a module-scoped fixture: start, yield, stop, then fail on server errors."""
    server = community_server(base / name, name=name, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    server.assert_no_tracebacks()


def token_from(url_or_uri: str) -> str:
    """The invite token in a landing-page URL (`...?TOKEN`) or an xmpp: URI (`...;preauth=TOKEN`)."""
    m = re.search(rf"preauth=({TOKEN_RE})", url_or_uri) or re.search(rf"\?({TOKEN_RE})$", url_or_uri)
    assert m, f"no invite token in {url_or_uri!r}"
    return m.group(1)


def probe_events(web, event: str | None = None, username: str | None = None) -> list[dict]:
    """What mod_community_probe recorded (optionally one event / one username)."""
    resp = web.get("/community_probe")
    assert resp.status == 200, resp
    entries = json.loads(resp.body or b"[]") or []
    return [e for e in entries if (event is None or e.get("event") == event)
            and (username is None or e.get("username") == username)]
