"""Which Prosody the harness runs and which invite modules it tests.

Host switch: $PROSODY_BIN / $PROSODYCTL_BIN name the launchers (default the
system's `prosody`/`prosodyctl`, Debian's 0.12); host_env("13") gives the
values for the Prosody 13 that tools/prosody13.sh unpacks under
target/prosody13. prosody_version() says which release they run.

Implementation switch: impl="ours" puts this project's plugin directory
(plugin_dir()) first in plugin_paths, impl="stock" leaves it out so the
modules that ship with Prosody are used. The default comes from $INVITES_IMPL.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from pathlib import Path

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parent.parent


class ServerError(RuntimeError):
    pass


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
def launcher_version(launcher: str) -> str:
    # What Prosody itself reads at start-up (util/startup.lua): CFG_SOURCEDIR/prosody.version.
    # Never run the launcher to ask: without --config it would use the system configuration.
    return (source_dir(launcher) / "prosody.version").read_text().strip()


def prosody_version_string() -> str:
    """The release the configured launchers run, e.g. "0.12.3" or "13.0.1"."""
    return launcher_version(prosodyctl_bin())


def prosody_version() -> tuple:
    """prosody_version_string() as a tuple of ints: (0, 12, 3), (13, 0, 1)."""
    return tuple(int(p) for p in re.findall(r"\d+", prosody_version_string())[:3])


def is_prosody13() -> bool:
    return prosody_version() >= (13,)
