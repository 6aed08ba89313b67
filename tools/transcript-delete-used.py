"""Transcript of deleting a used invite on one Prosody release (issue 20's "done when"): a real
server with our modules on loopback, an invite generated with prosodyctl, an account registered
with it by slixmpp, then `invite delete` in the admin shell and `prosodyctl mod_invites delete`.

    .venv/bin/python tools/transcript-delete-used.py 12|13

Prints each command as typed and what it printed. Uses the end-to-end harness (private data
directory under target/, free loopback ports); stops only the server it started.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spec" / "e2e"))

import prosody_host  # noqa: E402

os.environ.update(prosody_host.host_env(sys.argv[1] if len(sys.argv) > 1 else "12"))

import client  # noqa: E402
from community import token_from  # noqa: E402
from prosody import ProsodyServer  # noqa: E402
from prosody_host import prosody_version_string  # noqa: E402


def show(srv: ProsodyServer, *args: str) -> None:
    res = srv.prosodyctl(*args)
    print(f"$ prosodyctl --config prosody.cfg.lua {shlex.join(args)}")
    for line in (res.stdout + res.stderr).splitlines():
        print(line)
    print(f"[exit status {res.returncode}]")


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="transcript-", dir=ROOT / "target"))
    srv = ProsodyServer(base / "srv", hosts={"localhost": {}})
    srv.start()
    try:
        print(f"# Prosody {prosody_version_string()} with the modules in target/plugins")
        link = srv.generate_invite("localhost")
        token = token_from(link)
        print(f"$ prosodyctl --config prosody.cfg.lua mod_invites generate localhost\n{link}")
        result = client.register(srv, "newcomer", "a-password-1", token, login=False)
        print(f"# slixmpp: pre-auth with the token, register newcomer@localhost: {'ok' if result.ok else result}")
        show(srv, "shell", "invite", "delete", "localhost", token)
        show(srv, "mod_invites", "delete", "localhost", token)
        show(srv, "shell", "invite", "show", "localhost", token)
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
