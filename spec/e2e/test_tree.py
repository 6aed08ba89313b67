"""Who invited whom (README "Telling people"): `invite tree HOST JID` in the admin shell and
`prosodyctl mod_invites tree HOST JID` show the accounts that came from an account's invites,
recursively, with dates and the invite each used, from the audit records alone; `revoke_by HOST
JID --tree` revokes every pending invite of that tree; `invites_max_tree_size` refuses new invites
from accounts whose tree is full, with a one-line reason. Stock has none of this.
"""

from __future__ import annotations

import os
import re

import pytest

import client
from prosody_config import DEFAULT_MODULES
from prosody_host import default_impl, is_stock
from register_client import PASSWORD, new_name, shared_server, token_of

CONTACT_COMMAND = "urn:xmpp:invite#invite"
LINE = re.compile(r"^(?P<rule>[│ ]*)(?:├─|└─) (?P<jid>\S+)  registered (?P<date>\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)  invite (?P<token>\S+)$")

pytestmark = pytest.mark.skipif(is_stock(default_impl()), reason="the invite tree is this project's feature")


def jid(name):
    return f"{name}@localhost"


def capture(title, text):
    path = os.environ.get("NOTIFY_CAPTURE")
    if path:
        with open(path, "a") as f:
            f.write(f"## {title}\n{text}\n\n")


def invite_from(srv, inviter: str) -> str:
    """A contact invite that allows registration, made by `inviter` (a local account)."""
    record = srv.api1("create_contact", inviter, True)
    assert record and record.get("token"), record
    return record["token"]


def register_with(srv, inviter: str, prefix: str) -> tuple[str, str]:
    token = invite_from(srv, inviter)
    name = new_name(prefix)
    assert client.register(srv, name, PASSWORD, token, login=False).registration
    return name, token


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    server = shared_server(e2e_base_dir, "tree", hosts={"localhost": {"admins": ["admin@localhost"]}},
                           modules=[*DEFAULT_MODULES, "offline"])
    server.create_user("root", PASSWORD)
    server.create_user("admin", PASSWORD)
    yield server
    server.stop()
    server.assert_no_tracebacks()


def tree_lines(text: str) -> list[tuple[int, str, str]]:
    """(depth, account, token) for each account line of `invite tree` output."""
    found = []
    for line in text.splitlines():
        m = LINE.match(line.strip("| ").rstrip() if line.startswith("| ") else line.rstrip())
        if m:
            found.append((len(m.group("rule")) // 3 + 1, m.group("jid"), m.group("token")))
    return found


def test_a_three_level_chain(srv):
    bob, bob_token = register_with(srv, "root", "bob")
    carol, carol_token = register_with(srv, bob, "carol")
    dave, dave_token = register_with(srv, carol, "dave")
    erin, erin_token = register_with(srv, "root", "erin")
    # Not part of it: a contact approval of an existing account, and an invite made by the shell.
    stranger = new_name("stranger")
    res = srv.shell("invite", "create_account", "localhost")
    assert res.ok and client.register(srv, stranger, PASSWORD, token_of(res.text), login=False).registration

    res = srv.shell("invite", "tree", "localhost", jid("root"))
    assert res.ok, res
    assert res.text == "4 accounts came from the invites of root@localhost", res
    assert jid("root") in res.stdout.splitlines()[0]
    assert tree_lines(res.stdout) == [
        (1, jid(bob), bob_token),
        (2, jid(carol), carol_token),
        (3, jid(dave), dave_token),
        (1, jid(erin), erin_token),
    ], res.stdout
    assert jid(stranger) not in res.stdout
    capture("invite tree localhost root@localhost (admin shell)", res.stdout.strip())

    # The same from prosodyctl, with the server running or stopped.
    out = srv.prosodyctl("mod_invites", "tree", "localhost", jid("root"))
    assert out.returncode == 0, out
    assert tree_lines(out.stdout) == tree_lines(res.stdout), out.stdout
    assert "4 accounts came from the invites of root@localhost" in out.stdout
    capture("prosodyctl mod_invites tree localhost root@localhost", out.stdout.strip())

    # A subtree, and an account nobody came from.
    sub = srv.shell("invite", "tree", "localhost", jid(carol))
    assert sub.ok and tree_lines(sub.stdout) == [(1, jid(dave), dave_token)], sub
    leaf = srv.shell("invite", "tree", "localhost", jid(dave))
    assert leaf.ok and leaf.text == f"0 accounts came from the invites of {jid(dave)}", leaf


def test_bad_arguments(srv):
    res = srv.shell("invite", "tree", "localhost")
    assert not res.ok and "Missing argument" in res.text, res
    out = srv.prosodyctl("mod_invites", "tree", "nosuch.example", jid("root"))
    assert out.returncode == 2 and "not defined in the configuration" in out.stderr, out
    assert "Traceback" not in out.stderr


def test_revoke_a_whole_tree(srv):
    top = new_name("top")
    srv.create_user(top, PASSWORD)
    kid, _ = register_with(srv, top, "kid")
    grandkid, _ = register_with(srv, kid, "grandkid")
    pending = [invite_from(srv, top), invite_from(srv, kid), invite_from(srv, grandkid),
               srv.api1("create_account", None, {"source": f"{grandkid}@localhost/phone"})["token"]]
    keep = invite_from(srv, "root")
    res = srv.shell("invite", "revoke_by", "localhost", jid(top), "--tree")
    assert res.ok and res.text == f"Revoked 4 invitations created by {jid(top)} and its invite tree", res
    for token in pending:
        assert srv.api1("audit_get", token)["revoked_at"], token
    assert not srv.api1("audit_get", keep).get("revoked_at")
    # Without --tree, only the account's own invites (as before).
    mine, theirs = invite_from(srv, top), invite_from(srv, kid)
    res = srv.shell("invite", "revoke_by", "localhost", jid(top))
    assert res.ok and res.text == f"Revoked 1 invitations created by {jid(top)}", res
    assert srv.api1("audit_get", mine)["revoked_at"] and not srv.api1("audit_get", theirs).get("revoked_at")
    # prosodyctl's form.
    out = srv.prosodyctl("mod_invites", "revoke_by", "localhost", jid(top), "--tree")
    assert out.returncode == 0 and "Revoked 1 invitations" in out.stdout, out
    assert srv.api1("audit_get", theirs)["revoked_at"]


def test_a_full_tree_refuses_new_invites(make_server):
    server = make_server(hosts={"localhost": {"admins": ["admin@localhost"], "invites_max_tree_size": 3,
                                              "allow_user_invites": True}},
                         modules=[*DEFAULT_MODULES, "offline"])
    for name in ("alice", "admin", "eve"):
        server.create_user(name, PASSWORD)
    b, _ = register_with(server, "alice", "b")
    c, _ = register_with(server, b, "c")
    d, _ = register_with(server, "alice", "d")  # alice's tree: b, c, d — full
    reason = "No more invites: the invite tree of alice@localhost has reached its limit of 3 accounts"
    for member in ("alice", b, c, d):
        refused = server.api("create_contact", member, True)
        assert refused == [None, "quota-exceeded", reason], (member, refused)
    # Through the ad-hoc command: the reason, as a command error.
    result = client.adhoc(server, jid(c), PASSWORD, CONTACT_COMMAND)
    assert not result.ok and reason in result.xml, result.xml
    # Outside the tree, admins, the shell and prosodyctl are not limited.
    assert server.api1("create_contact", "eve", True)["token"]
    assert server.api1("create_contact", "admin", True)["token"]
    assert server.shell("invite", "create_contact", jid("alice"), "--allow-registration").ok
    assert server.prosodyctl("mod_invites", "generate", "localhost").returncode == 0
    assert reason in server.log_text()
