"""Switching between the stock modules and ours loses nothing (README "Installing": switching back).

Invites of every kind are written by one implementation, the server is restarted on the same
data directory with the other, and the invites are used there as a client would use them.
"""

from __future__ import annotations

import re

import pytest

import client
from prosody_host import prosody_version

HOST = "localhost"


def other(impl: str) -> str:
    return "stock" if impl == "ours" else "ours"


def write_invites(server) -> dict:
    server.api("create_user", "bob", "pw-bob")
    server.api("create_user", "rosa", "old-rosa")
    server.api("create_user", "dave", "pw-dave")
    invites = {
        "account": server.api1("create_account"),
        "named": server.api1("create_account", "nadia"),
        "reset": server.api1("create_account_reset", "rosa"),
        "contact_only": server.api1("create_contact", "bob", False),
        "contact_ibr": server.api1("create_contact", "bob", True),
        "group": server.api1("create_group", ["g1"], {"source": "compat"}, 3600),
    }
    invites["generated"] = {"token": admin_invite_token(server)}
    return invites


def admin_invite_token(server) -> str:
    """An invite granting prosody:admin from that release's stock command line: 0.12's
    `generate --admin`, 13's `shell invite create_account --role` (stock 13 refuses --admin)."""
    if prosody_version() < (13,):
        link = server.generate_invite(HOST, "--admin")
    else:
        res = server.prosodyctl("shell", "invite", "create_account", HOST, "--role", "prosody:admin")
        assert res.returncode == 0, res
        link = res.stdout
    m = re.search(r"preauth=([A-Za-z0-9_-]+)", link)
    assert m, link
    return m.group(1)


def use_invites(server, invites: dict, reader: str) -> None:
    tok = {name: record["token"] for name, record in invites.items()}

    info = server.api1("get_account_invite_info", tok["account"])
    assert {k: info[k] for k in ("type", "jid", "uri", "expires", "created_at")} == \
        {k: invites["account"][k] for k in ("type", "jid", "uri", "expires", "created_at")}
    pending = dict(server.api1("pending_account_invites"))
    assert {tok["account"], tok["named"], tok["reset"], tok["contact_ibr"], tok["group"]} <= set(pending)

    assert client.register(server, "newbie", "pw-newbie", tok["account"]).ok
    assert server.api1("store_get", None, tok["account"]) is None

    assert client.register(server, "nadia", "pw-nadia", tok["named"]).ok

    reset = client.register(server, "rosa", "new-rosa", tok["reset"])
    assert reset.registration, reset
    assert client.can_login(server, "rosa@localhost", "new-rosa")
    assert not client.can_login(server, "rosa@localhost", "old-rosa")

    assert client.register(server, "cara", "pw-cara", tok["contact_ibr"]).ok
    assert client.roster(server, "cara@localhost", "pw-cara")["bob@localhost"]["subscription"] == "both"
    assert server.api1("store_get", "bob", tok["contact_ibr"]) is None

    assert client.register(server, "g1a", "pw", tok["group"]).ok
    assert client.register(server, "g1b", "pw", tok["group"]).ok

    assert client.register(server, "adm", "pw-adm", tok["generated"]).ok
    assert server.api1("user_roles", "adm") == ["prosody:admin"]

    if reader == "ours":
        # XEP-0379 with a contact-only token; stock cannot do this at all (its own bug B1).
        result = client.subscribe_with_preauth(server, "dave@localhost", "pw-dave", "bob@localhost", tok["contact_only"])
        assert result.got_subscribed, result
        assert client.roster(server, "bob@localhost", "pw-bob")["dave@localhost"]["subscription"] == "both"
    else:
        assert server.api1("store_get", "bob", tok["contact_only"]) == invites["contact_only"]["expires"]


@pytest.mark.parametrize("storage", ["internal", "sql"])
def test_invites_survive_switching_implementation(make_server, impl, storage):
    writer, reader = other(impl), impl
    server = make_server(impl=writer, storage=storage)
    invites = write_invites(server)
    server.restart(impl=reader)
    use_invites(server, invites, reader)


@pytest.mark.parametrize("storage", ["internal", "sql"])
def test_invites_written_now_work_after_switching_back(make_server, impl, storage):
    writer, reader = impl, other(impl)
    server = make_server(impl=writer, storage=storage)
    invites = write_invites(server)
    server.restart(impl=reader)
    use_invites(server, invites, reader)


def shape(value):
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def test_records_have_the_stock_shape(make_server):
    shapes = {}
    for impl in ("stock", "ours"):
        server = make_server(impl=impl)
        server.api("create_user", "bob", "pw")
        records = {
            "account": server.api1("create_account", None, {"source": "x"}),
            "named": server.api1("create_account", "nadia"),
            "reset": server.api1("create_account_reset", "bob"),
            "contact_ibr": server.api1("create_contact", "bob", True),
            "group": server.api1("create_group", ["g1"], None, 600),
        }
        stored = {name: server.api1("store_get", None, r["token"]) for name, r in records.items()}
        contact = server.api1("create_contact", "bob", False)
        stored["contact_only_user_entry"] = server.api1("store_get", "bob", contact["token"])
        stored["contact_only_host_entry"] = server.api1("store_get", None, contact["token"])
        shapes[impl] = shape(stored)
        server.stop()
    assert shapes["ours"] == shapes["stock"]
