#!/usr/bin/env python3
"""`make run`: a local Prosody on loopback with this project's modules, printing a working invite.

Configuration, data and log live in run/ (git-ignored), so accounts survive restarts. The server
runs until Ctrl-C; only the process started here is stopped. --prosody 13 runs it on the
Prosody 13 of target/prosody13 (make prosody13; `make run PROSODY=13`), in run/13/.
"""
import argparse
import signal
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "spec" / "e2e"))
import prosody_host  # noqa: E402  (shared with the test harness)
from prosody import ProsodyServer, free_port  # noqa: E402

MODULES = [
    "roster", "saslauth", "disco", "ping", "adhoc", "http", "admin_shell", "register_ibr",
    "invites", "invites_register", "invites_adhoc",
    # The invitation web (landing page, web sign-up and reset, my invites, admin page) and the
    # password policy it applies.
    "invites_web", "password_policy",
]


def port_or_free(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def main() -> int:
    parser = argparse.ArgumentParser(description="A local Prosody with these modules, printing an invite.")
    parser.add_argument("--prosody", choices=["12", "13"], default="12",
                        help="12: the system's Prosody (default); 13: target/prosody13")
    args = parser.parse_args()
    try:
        prosody_host.use_host(args.prosody)
    except prosody_host.ServerError as e:
        print(e, file=sys.stderr)
        return 1
    # Each release keeps its own data: 13 migrates nothing back to 0.12.
    workdir = ROOT / "run" if args.prosody == "12" else ROOT / "run" / args.prosody
    server = ProsodyServer(
        workdir,
        impl="ours",
        modules=MODULES,
        name="run",
        options={"registration_invite_only": True, "admins": ["admin@localhost"]},
    )
    server.c2s_port, server.http_port = port_or_free(5222), port_or_free(5280)
    server.options.update({"site_name": "Local invites", "http_external_url": f"http://localhost:{server.http_port}/"})
    server.options["log"] = [{"levels": {"min": "info"}, "to": "file", "filename": str(server.log_path)}]
    try:
        server.start()
    except prosody_host.ServerError as e:
        print(f"Prosody did not start: {e}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C (SIGINT) stops it even when started where SIGINT is ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        link = server.generate_invite("localhost")
        token = link.rsplit("?", 1)[1] if link.startswith("http") else link.rsplit("preauth=", 1)[1]
        print(f"""
Prosody {prosody_host.prosody_version_string()} is running on 127.0.0.1 (client port {server.c2s_port}, HTTP {server.http_port}),
virtual host "localhost", with the invite modules from {ROOT / 'target' / 'plugins'}.
Configuration and data: {workdir}

Register an account with this invite: open the page in a browser (web sign-up, app list, QR
code), or give the xmpp: URI to any XMPP client pointed at localhost:{server.c2s_port} (not encrypted):

    {link}
    xmpp:localhost?register;preauth={token}

My invites and the admin page: http://localhost:{server.http_port}/invite/me (sign up as "admin" for the admin page)
More invites: {prosody_host.prosodyctl_bin()} --config {server.config_path} mod_invites generate localhost
Log: {server.log_path}.  Ctrl-C stops the server.
""", flush=True)
        seen = len(server.log_text())
        while server.running:
            time.sleep(0.5)
            text = server.log_text()
            if len(text) > seen:
                sys.stdout.write(text[seen:])
                sys.stdout.flush()
                seen = len(text)
        print("Prosody exited.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
