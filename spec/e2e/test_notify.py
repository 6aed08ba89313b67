"""Telling the inviter (README "Telling people"): when an invite is used, its creator — a local
account — gets a chat message from the host naming the new contact and the group chats joined, in
the creator's language where known; online, or from offline storage at the next login. Never for
invites made by the shell, prosodyctl or an API key; `invites_notify_inviter = false` turns it off;
`invite-notify-inviter` lets a module replace the text. Stock has none of this.
"""

from __future__ import annotations

import os

import pytest

import client
from online_client import OnlineClient
from prosody_config import DEFAULT_MODULES
from prosody_host import default_impl, is_stock
from rawxmpp import local, to_xml
from register_client import PASSWORD, new_name, shared_server, token_of, user, wait_until

NS_NOTIFY = "urn:x-prosody-invites:notify"
NS_DELAY = "urn:xmpp:delay"
MUC = "conference.localhost"
TEAM = f"team@{MUC}"
CONTACT_COMMAND = "urn:xmpp:invite#invite"
ROOMS_COMMAND = "urn:x-prosody-invites:commands#rooms"
MODULES = [*DEFAULT_MODULES, "offline", "pep", "bookmarks", "test_notify_text"]

pytestmark = pytest.mark.skipif(is_stock(default_impl()), reason="telling the inviter is this project's feature")


def jid(name):
    return f"{name}@localhost"


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    server = shared_server(e2e_base_dir, "notify", hosts={"localhost": {"admins": [], "allow_user_invites": True}},
                           components={MUC: ("muc", {})}, modules=MODULES)
    server.create_user("alice", PASSWORD)
    server.api("muc_create", TEAM, {"name": "Team", "members_only": True, "affiliations": {"alice@localhost": "owner"}})
    yield server
    server.stop()
    server.assert_no_tracebacks()


def capture(title, lines):
    """Keep stanzas for the README note ($NOTIFY_CAPTURE names the file)."""
    path = os.environ.get("NOTIFY_CAPTURE")
    if path:
        with open(path, "a") as f:
            f.write(f"## {title}\n" + "\n".join(lines) + "\n\n")


def notifications(stanzas, since=0):
    """Messages from the host carrying <invite-used/>: [(element, body, invite-used element)]."""
    found = []
    for el in stanzas[since:]:
        used = el.find(f"{{{NS_NOTIFY}}}invite-used") if local(el.tag) == "message" else None
        if used is not None:
            found.append((el, el.findtext("{jabber:client}body"), used))
    return found


def contact_invite(online) -> str:
    result = online.adhoc(CONTACT_COMMAND)
    assert result.ok and result.status == "completed", result.xml
    uri = result.form.value("uri")
    assert "ibr=y" in uri, uri
    return token_of(uri)


def test_online_inviter_is_told_who_joined(srv):
    with OnlineClient(srv, jid("alice"), PASSWORD) as alice:
        token = contact_invite(alice)
        mark = alice.mark()
        name = new_name("friend")
        assert client.register(srv, name, PASSWORD, token, login=False).registration
        assert wait_until(lambda: notifications(alice.stanzas, mark)), alice.stanzas[mark:]
        (msg, body, used), = notifications(alice.stanzas, mark)
        assert msg.get("from") == "localhost" and msg.get("type") == "chat"
        assert msg.get("to").split("/")[0] == jid("alice")
        assert msg.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
        assert body == f"{jid(name)} joined with your invite. Say hello!"
        assert used.get("jid") == jid(name) and used.get("how") == "registered"
        capture("online, English, an account registered with alice's contact invite", [to_xml(msg)])


def test_offline_inviter_is_told_at_next_login_in_their_language_with_group_chats(srv):
    # alice's session speaks German (its initial presence says so): her invites remember it.
    with OnlineClient(srv, jid("alice"), PASSWORD, presence=False) as alice:
        alice.send_raw("<presence xml:lang='de'/>")
        result = alice.adhoc(ROOMS_COMMAND, {"rooms": [TEAM]})
        assert result.ok and result.status == "completed", result.xml
        token = token_of(result.form.value("uri"))
    name = new_name("freund")
    assert client.register(srv, name, PASSWORD, token, login=False).registration
    srv.wait_for_log(rf"Telling alice@localhost that {name}@localhost used their invite")
    with OnlineClient(srv, jid("alice"), PASSWORD) as alice:
        assert wait_until(lambda: notifications(alice.stanzas)), alice.stanzas
        (msg, body, used), = notifications(alice.stanzas)
        assert body == f"{jid(name)} hat sich mit deiner Einladung angemeldet. Gruppenchats: {TEAM}. Sag Hallo!"
        assert msg.get("{http://www.w3.org/XML/1998/namespace}lang") == "de"
        assert msg.find(f"{{{NS_DELAY}}}delay") is not None, "not from offline storage"
        capture("offline, German, with a group chat: delivered at alice's next login", [to_xml(msg)])


def test_contact_invite_accepted_through_xep0379(srv):
    bob = user(srv, "bob")
    with OnlineClient(srv, jid("alice"), PASSWORD) as alice:
        token = contact_invite(alice)
        mark = alice.mark()
        assert client.subscribe_with_preauth(srv, jid(bob), PASSWORD, jid("alice"), token).got_subscribed
        assert wait_until(lambda: notifications(alice.stanzas, mark)), alice.stanzas[mark:]
        (_, body, used), = notifications(alice.stanzas, mark)
        assert body == f"{jid(bob)} accepted your invite and is now one of your contacts. Say hello!"
        assert used.get("how") == "contact-approved"


@pytest.mark.parametrize("made_by", ["shell", "api", "prosodyctl", "reset"])
def test_never_for_the_shell_prosodyctl_an_api_key_or_a_reset(srv, made_by):
    with OnlineClient(srv, jid("alice"), PASSWORD) as alice:
        if made_by == "shell":  # the shell names alice as the inviter, but the shell made it
            res = srv.shell("invite", "create_contact", jid("alice"), "--allow-registration")
            assert res.ok, res
            token = token_of(res.text)
        elif made_by == "api":
            token = srv.api1("create_contact", "alice", True, {"source": "api/token/7"})["token"]
        elif made_by == "prosodyctl":
            token = token_of(srv.generate_invite())
        else:
            token = srv.api1("create_account_reset", "alice", {"source": jid("alice")})["token"]
        mark, log_mark = alice.mark(), srv.log_mark()
        name = "alice" if made_by == "reset" else new_name("quiet")
        assert client.register(srv, name, PASSWORD, token, login=False).registration
        assert srv.api1("audit_get", token)["uses"], srv.api1("audit_get", token)
        if made_by != "reset":  # the use was looked at, and its creator is no account
            srv.wait_for_log(r"Not telling the creator of invite .*: not created by an account", since=log_mark)
        assert not wait_until(lambda: notifications(alice.stanzas, mark), timeout=1.5), alice.stanzas[mark:]


def test_a_module_replaces_the_text(srv):
    with OnlineClient(srv, jid("alice"), PASSWORD) as alice:
        token = contact_invite(alice)
        mark = alice.mark()
        name = new_name("custom")  # mod_test_notify_text rewrites the text for these
        assert client.register(srv, name, PASSWORD, token, login=False).registration
        assert wait_until(lambda: notifications(alice.stanzas, mark)), alice.stanzas[mark:]
        (_, body, _), = notifications(alice.stanzas, mark)
        assert body == f"Custom: {jid(name)} (registered)"
    with OnlineClient(srv, jid("alice"), PASSWORD) as alice:
        token = contact_invite(alice)
        mark = alice.mark()
        assert client.register(srv, new_name("silent"), PASSWORD, token, login=False).registration  # suppressed
        assert not wait_until(lambda: notifications(alice.stanzas, mark), timeout=2), alice.stanzas[mark:]


def test_the_option_turns_it_off(make_server):
    server = make_server(hosts={"localhost": {"allow_user_invites": True, "invites_notify_inviter": False}},
                         modules=[*DEFAULT_MODULES, "offline"])
    server.create_user("alice", PASSWORD)
    with OnlineClient(server, jid("alice"), PASSWORD) as alice:
        token = contact_invite(alice)
        mark = alice.mark()
        name = new_name("off")
        assert client.register(server, name, PASSWORD, token, login=False).registration
        assert alice.wait_for_roster_push(jid(name)) is not None  # the registration went through
        assert not wait_until(lambda: notifications(alice.stanzas, mark), timeout=2), alice.stanzas[mark:]
