"""Helpers for the registration (XEP-0401/0445) and XEP-0379 end-to-end tests.

Shared servers: the registration suites reuse one Prosody per test module
(unique usernames keep tests apart) and check its log for tracebacks at the
end, so the whole set stays fast.
"""

from __future__ import annotations

import itertools
import re
import time
from xml.sax.saxutils import quoteattr

import rawxmpp
from prosody import ProsodyServer
from rawxmpp import NS_PARS, stanza_error

HOST = "localhost"
INVALID_TOKEN_TEXT = "The invite token is invalid or expired"
INVITE_ONLY_TEXT = "Registration on this server is through invitation only"
PASSWORD = "correct horse"

_names = itertools.count(1)
_TOKEN = re.compile(r"[?;]preauth=([^;&]+)")


def new_name(prefix: str = "user") -> str:
    """A username no other test on a shared server uses."""
    return f"{prefix}{next(_names)}"


def token_of(uri: str) -> str:
    m = _TOKEN.search(uri)
    assert m, f"no preauth token in {uri!r}"
    return m.group(1)


def shared_server(base_dir, name: str, **kwargs) -> ProsodyServer:
    """A started server in its own directory under the session's e2e directory."""
    workdir = base_dir / name
    workdir.mkdir(exist_ok=True)
    kwargs.setdefault("name", name)
    return ProsodyServer(workdir, **kwargs).start()


# --------------------------------------------------------------------------
# invites through the test API (work with stock and ours alike)


def account_invite(server, username: str | None = None, additional_data: dict | None = None) -> dict:
    record = server.api1("create_account", username, additional_data)
    assert record and record.get("token"), record
    return record


def reset_invite(server, username: str) -> dict:
    record = server.api1("create_account_reset", username)
    assert record and record.get("token"), record
    return record


def contact_invite(server, inviter: str, allow_registration: bool = False) -> dict:
    record = server.api1("create_contact", inviter, allow_registration)
    assert record and record.get("token"), record
    return record


def expire(server, record: dict) -> None:
    """Backdate a stored invite (both halves when it has them) so it is expired now."""
    past = int(server.api1("now")) - 10
    token = record["token"]
    host_level = server.api1("store_get", None, token)
    if host_level:
        host_level["expires"] = past
        server.api("store_set", None, token, host_level)
    if record.get("type") == "roster":
        inviter = record["jid"].split("@", 1)[0]
        if server.api1("store_get", inviter, token) is not None:
            server.api("store_set", inviter, token, past)


def user(server, prefix: str = "user", password: str = PASSWORD) -> str:
    """Create a fresh account; returns its username."""
    name = new_name(prefix)
    server.create_user(name, password)
    return name


def user_exists(server, username: str) -> bool:
    return bool(server.api1("user_exists", username))


# --------------------------------------------------------------------------
# raw pre-auth


def preauth_raw(raw: rawxmpp.RawXMPP, token: str | None, iq_type: str = "set") -> dict:
    """Send a pre-auth iq (token=None: no token attribute) and summarise the reply."""
    attr = "" if token is None else f" token={quoteattr(token)}"
    reply = raw.iq(f"<preauth xmlns='{NS_PARS}'{attr}/>", type=iq_type)
    err = stanza_error(reply) or {"type": None, "condition": None, "text": None}
    return {"ok": reply.get("type") == "result", "children": len(list(reply)), **err}


def preauth(server, token: str | None, iq_type: str = "set") -> dict:
    with rawxmpp.open_stream(server) as raw:
        return preauth_raw(raw, token, iq_type)


def register_raw(raw: rawxmpp.RawXMPP, username: str, password: str = PASSWORD) -> dict:
    reply = raw.register(username, password)
    err = stanza_error(reply) or {"type": None, "condition": None, "text": None}
    return {"ok": reply.get("type") == "result", **err}


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.05):
    """Poll predicate() until it returns something truthy; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
