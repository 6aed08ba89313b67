"""Servers for the community-module tests (spec/e2e/test_community_*.py).

Debian's `prosody-modules` puts each community module in its own folder under Prosody's module
directory (/usr/lib/prosody/modules/mod_invites_page/mod_invites_page.lua, ...), which Prosody
searches after the configured plugin_paths; the tests load them from there, unchanged.

mod_invites_register_web depends on a module named `password_policy`, which that package does not
ship; we ship lua/mod_password_policy.lua in our plugin directory. With INVITES_IMPL=stock our
plugin directory is not on the path, so a stock server gets a directory holding only that one
module: the stock comparison then differs from ours in the invite modules alone.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from prosody import DEFAULT_MODULES, REPO_ROOT, ProsodyServer, default_impl, is_stock, plugin_dir

# Where Debian's prosody-modules (and Prosody's own modules) live.
COMMUNITY_DIR = Path(os.environ.get("COMMUNITY_MODULES_DIR", "/usr/lib/prosody/modules"))

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


def stock_extra_paths(workdir: Path) -> list[Path]:
    """For a stock server: a plugin directory with our mod_password_policy only."""
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
    """Assert the community modules come from Debian's folders and password_policy from ours."""
    paths = server.api1("module_paths", host=host) or {}
    for name in DEBIAN_COMMUNITY_MODULES:
        expected = COMMUNITY_DIR / f"mod_{name}" / f"mod_{name}.lua"
        assert paths.get(name) and Path(paths[name]).resolve() == expected.resolve(), (name, paths.get(name))
    policy = Path(paths.get("password_policy") or "/nonexistent")
    if is_stock(server):
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
