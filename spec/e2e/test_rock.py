"""The binary rock installed the way Prosody operators install plugins: `prosodyctl install FILE`,
into the server's own installer tree, which Prosody then puts first on its plugin path by itself
(no plugin_paths entry). Collected only when $E2E_ROCK names the rock (the rock tiers of
tools/run-tests.py, after tools/build-rock.sh).

installer_plugin_path is always set: its default lies under the launcher's data directory
(/var/lib/prosody/custom_plugins on Debian, on 0.12 even when data_path says otherwise), which a
test must never write.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import client
from prosody_ctl import last_line

ROCK = Path(os.environ.get("E2E_ROCK", "")).resolve()
MODULES = ("invites", "invites_register", "invites_adhoc")
LUA_VERSION = "5.4"  # Debian's Prosody, 0.12 and 13


@pytest.fixture
def installer(tmp) -> Path:
    return tmp / "custom_plugins"


def test_prosodyctl_install_rock_file(make_server, installer):
    # impl="stock": no plugin_paths entry of ours; only the installer tree can supply our modules.
    srv = make_server(start=False, impl="stock", options={"installer_plugin_path": str(installer)})
    res = srv.prosodyctl("install", str(ROCK), timeout=120)
    assert res.returncode == 0, res
    assert f"is now installed in {installer}" in res.stdout + res.stderr, res
    plugin_dir = installer / "share" / "lua" / LUA_VERSION
    for name in ("invites_core.so", "invites_native.lib.lua", *(f"mod_{m}.lua" for m in MODULES)):
        assert (plugin_dir / name).is_file(), name
    listed = srv.prosodyctl("list")
    assert listed.returncode == 0 and "prosody-invites" in listed.stdout, listed

    srv.start()
    for name in MODULES:
        assert srv.module_path(name) == str(plugin_dir / f"mod_{name}.lua")
    uri = srv.prosodyctl("mod_invites", "generate", "localhost")
    assert uri.returncode == 0, uri
    token = re.search(r"preauth=([A-Za-z0-9_-]+)", last_line(uri.stdout)).group(1)
    reg = client.register(srv, "rocky", "pw-rocky", token)
    assert reg.ok, reg
    assert client.can_login(srv, "rocky@localhost", "pw-rocky")
    srv.stop()

    res = srv.prosodyctl("remove", "prosody-invites", timeout=60)
    assert res.returncode == 0, res
    assert not (plugin_dir / "mod_invites.lua").exists()
