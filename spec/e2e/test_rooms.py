"""Invites that carry group chats (README "Group chats in invites").

A real `Component "conference.localhost" "muc"`, with pep, bookmarks and offline on the host.
Rooms are made through mod_muc's own API (test API); affiliations are read the same way.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

import client
from online_client import OnlineClient
from prosody_config import DEFAULT_MODULES
from prosody_host import default_impl, is_stock
from rawxmpp import local
from register_client import PASSWORD, new_name, shared_server, token_of, user, wait_until

MUC = "conference.localhost"
LOUNGE, SECRET, OPEN, TEAM, TEMP = (f"{n}@{MUC}" for n in ("lounge", "secret", "open", "team", "temp"))
NS_CONFERENCE = "jabber:x:conference"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
ROOMS_FIELD = "urn:x-prosody-invites:rooms"
ROOMS_COMMAND = "urn:x-prosody-invites:commands#rooms"
ACCOUNT_COMMAND = "urn:xmpp:invite#create-account"
ADMIN = "admin@localhost"
MODULES = [*DEFAULT_MODULES, "pep", "bookmarks", "offline"]

pytestmark = pytest.mark.skipif(is_stock(default_impl()), reason="rooms are this project's feature")


def rooms_server(base_dir, name, **kw):
    return shared_server(
        base_dir, name,
        hosts={"localhost": {"admins": [ADMIN], "allow_user_invites": True}},
        components={MUC: ("muc", {})},
        modules=MODULES, **kw)


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    server = rooms_server(e2e_base_dir, "rooms")
    server.create_user("admin", PASSWORD)
    server.create_user("alice", PASSWORD)
    server.create_user("carol", PASSWORD)
    server.api("muc_create", LOUNGE, {"name": "Lounge", "members_only": True})
    server.api("muc_create", SECRET, {"name": "Secret", "members_only": True, "password": "s3cret"})
    server.api("muc_create", OPEN, {"name": "Open"})
    server.api("muc_create", TEAM, {"name": "Team", "members_only": True,
                                    "affiliations": {"alice@localhost": "owner", "carol@localhost": "member"}})
    server.api("muc_create", TEMP, {"persistent": False})
    yield server
    server.stop()
    server.assert_no_tracebacks()


def jid(name):
    return f"{name}@localhost"


def affiliation(server, room, name):
    return server.api1("muc_affiliation", room, jid(name))


def invitations(stanzas):
    """The XEP-0249 invitations among received stanzas: (from, x attributes, xml)."""
    found = []
    for el in stanzas:
        el = ET.fromstring(el) if isinstance(el, str) else el
        if local(el.tag) != "message":
            continue
        x = el.find(f"{{{NS_CONFERENCE}}}x")
        if x is not None:
            found.append((el.get("from"), dict(x.attrib), ET.tostring(el, encoding="unicode")))
    return found


def bookmarks(online):
    reply = online.iq("get", None, f"<pubsub xmlns='{NS_PUBSUB}'><items node='{NS_BOOKMARKS}'/></pubsub>")
    assert reply.get("type") == "result", ET.tostring(reply, encoding="unicode")
    out = {}
    for item in reply.iter(f"{{{NS_PUBSUB}}}item"):
        conf = item.find(f"{{{NS_BOOKMARKS}}}conference")
        password = conf.find(f"{{{NS_BOOKMARKS}}}password")
        out[item.get("id")] = {"name": conf.get("name"), "autojoin": conf.get("autojoin"),
                               "password": password.text if password is not None else None,
                               "xml": ET.tostring(item, encoding="unicode")}
    return out


def capture(title, lines):
    """Keep stanzas for the README note ($ROOMS_CAPTURE names the file)."""
    path = os.environ.get("ROOMS_CAPTURE")
    if path:
        with open(path, "a") as f:
            f.write(f"## {title}\n" + "\n".join(lines) + "\n\n")


def last_rooms_event(server, account):
    events = [e for e in server.api1("rooms_events") if e["account"] == account]
    assert events, server.api1("rooms_events")
    return {r["jid"]: r["outcome"] for r in events[-1]["results"]}


# --------------------------------------------------------------------------


def test_admin_account_invite_with_two_rooms(srv):
    result = client.adhoc(srv, ADMIN, PASSWORD, ACCOUNT_COMMAND, {ROOMS_FIELD: [LOUNGE, SECRET]})
    assert result.ok and result.status == "completed", result.xml
    token = token_of(result.form.value("uri"))
    name = new_name("newbie")
    reg = client.register(srv, name, PASSWORD, token, login=False)
    assert reg.registration, reg.registration
    # Membership before the first login; bob, not invited, has none.
    assert affiliation(srv, LOUNGE, name) == "member"
    assert affiliation(srv, SECRET, name) == "member"
    assert affiliation(srv, LOUNGE, "carol") is None
    assert last_rooms_event(srv, jid(name)) == {LOUNGE: "granted", SECRET: "granted"}
    grants = srv.api1("keyval_get", "invites_room_grants", name)
    assert set(grants) == {LOUNGE, SECRET}

    with OnlineClient(srv, jid(name), PASSWORD) as online:
        # Offline invitations arrive with the first available presence: one per room, from the
        # room (the invite has no inviter), the password with the secret one.
        assert wait_until(lambda: len(invitations(online.stanzas)) >= 2), online.stanzas
        got = {x["jid"]: (sender, x) for sender, x, _ in invitations(online.stanzas)}
        assert got[LOUNGE][0] == LOUNGE and got[SECRET][0] == SECRET
        assert got[LOUNGE][1]["reason"] == "You were invited to Lounge"
        assert got[SECRET][1].get("password") == "s3cret"
        assert "password" not in got[LOUNGE][1]
        marks = bookmarks(online)
        assert marks[LOUNGE]["autojoin"] == "true" and marks[LOUNGE]["name"] == "Lounge", marks
        assert marks[SECRET]["password"] == "s3cret", marks
        capture("admin account invite: invitations at first login",
                [xml for _, _, xml in invitations(online.stanzas)])
        capture("admin account invite: the account's bookmarks (urn:xmpp:bookmarks:1 items)",
                [m["xml"] for m in marks.values()])
    # The audit record notes the rooms of the use; `invite show` lists the rooms.
    audit = srv.api1("audit_get", token)
    assert audit["uses"][0]["rooms"] == {LOUNGE: "granted", SECRET: "granted"}, audit


def test_shell_and_prosodyctl_rooms(srv):
    res = srv.shell("invite", "create_account", "localhost", "--room", OPEN, "--room", LOUNGE)
    assert res.ok, res
    token = token_of(res.text)
    show = srv.shell("invite", "show", "localhost", token)
    assert show.ok and "Group chat:" in show.stdout and OPEN in show.stdout and LOUNGE in show.stdout, show
    refused = srv.shell("invite", "create_account", "localhost", "--room", f"nope@{MUC}")
    assert not refused.ok and f"nope@{MUC}" in refused.text and "no such group chat" in refused.text, refused

    out = srv.prosodyctl("mod_invites", "generate", "localhost", "--room", LOUNGE)
    assert out.returncode == 0, out
    assert "checked when the invite is used" in out.stderr
    name = new_name("ctl")
    assert client.register(srv, name, PASSWORD, token_of(out.stdout.strip()), login=False).registration
    assert affiliation(srv, LOUNGE, name) == "member"
    for bad in ("lounge@localhost", "not a jid@@", MUC):
        res = srv.prosodyctl("mod_invites", "generate", "localhost", "--room", bad)
        assert res.returncode == 2, (bad, res)
    res = srv.prosodyctl("mod_invites", "generate", "localhost", "--reset", "alice", "--room", LOUNGE)
    assert res.returncode == 2 and "--room" in res.stderr, res
    refused = srv.api("create_account_reset", "alice", {"rooms": [LOUNGE]})
    assert refused[:2] == [None, "bad-request"] and "cannot carry group chats" in refused[2], refused


def test_user_contact_invite_used_by_new_account(srv):
    result = client.adhoc(srv, jid("alice"), PASSWORD, ROOMS_COMMAND, {"rooms": [TEAM]})
    assert result.ok and result.status == "completed", result.xml
    uri = result.form.value("uri")
    assert "ibr=y" in uri, uri
    name = new_name("friend")
    assert client.register(srv, name, PASSWORD, token_of(uri), login=False).registration
    assert affiliation(srv, TEAM, name) == "member"
    with OnlineClient(srv, jid(name), PASSWORD) as online:
        # The first login gets the invitation from offline storage; alice is a mutual contact.
        assert online.roster()[jid("alice")]["subscription"] == "both"
        assert wait_until(lambda: invitations(online.stanzas)), online.stanzas
        (sender, x, xml), = invitations(online.stanzas)
        assert sender.split("/")[0] == jid("alice") and x["jid"] == TEAM
        assert x["reason"] == "alice@localhost invited you to Team"
        capture("contact invite by alice: the invitation at first login", [xml])


def test_user_contact_invite_used_by_existing_account(srv):
    bob = user(srv, "bob")
    result = client.adhoc(srv, jid("alice"), PASSWORD, ROOMS_COMMAND, {"rooms": [TEAM]})
    token = token_of(result.form.value("uri"))
    sub = client.subscribe_with_preauth(srv, jid(bob), PASSWORD, jid("alice"), token)
    assert sub.got_subscribed, sub.received
    assert affiliation(srv, TEAM, bob) == "member"
    order = [(local(ET.fromstring(s).tag), ET.fromstring(s).get("type")) for s in sub.stanzas]
    kinds = [i for i, s in enumerate(sub.stanzas) if NS_CONFERENCE in s]
    subscribed = [i for i, (tag, t) in enumerate(order) if tag == "presence" and t == "subscribed"]
    assert kinds and subscribed and subscribed[0] < kinds[0], sub.stanzas
    (sender, x, xml), = invitations([sub.stanzas[kinds[0]]])
    assert sender.split("/")[0] == jid("alice") and x["jid"] == TEAM
    capture("existing account accepting alice's contact invite (XEP-0379): after `subscribed`", [xml])
    with OnlineClient(srv, jid(bob), PASSWORD) as online:
        assert bookmarks(online)[TEAM]["autojoin"] == "true"


def test_refused_rooms_name_the_room(srv):
    # carol is a member of team, where member invites are off.
    cases = [
        (jid("carol"), [TEAM], "not-allowed", TEAM),
        (jid("alice"), [f"nope@{MUC}"], "item-not-found", f"nope@{MUC}"),
        (jid("alice"), ["room@localhost"], "bad-request", "room@localhost"),
        (jid("alice"), [TEMP], "bad-request", TEMP),
    ]
    for who, rooms, condition, named in cases:
        result = client.adhoc(srv, who, PASSWORD, ROOMS_COMMAND, {"rooms": rooms})
        assert result.error is not None and result.error.condition == condition, (who, rooms, result.xml)
        assert named in (result.error.text or ""), result.xml
    # In an open room any user who is not banned may invite.
    assert client.adhoc(srv, jid("carol"), PASSWORD, ROOMS_COMMAND, {"rooms": [OPEN]}).ok
    too_many = [f"r{i}@{MUC}" for i in range(11)]
    result = client.adhoc(srv, ADMIN, PASSWORD, ACCOUNT_COMMAND, {ROOMS_FIELD: too_many})
    assert result.error is not None and "at most 10" in result.error.text, result.xml


def test_destroyed_room_does_not_block_registration(srv):
    doomed = f"doomed@{MUC}"
    srv.api("muc_create", doomed, {"members_only": True})
    record = srv.api1("create_account", None, {"rooms": [LOUNGE, {"jid": doomed, "autojoin": False}]})
    assert record["additional_data"]["rooms"] == [{"jid": LOUNGE, "autojoin": True}, {"jid": doomed, "autojoin": False}]
    srv.api("muc_destroy", doomed)
    name = new_name("late")
    assert client.register(srv, name, PASSWORD, record["token"], login=False).registration
    assert affiliation(srv, LOUNGE, name) == "member"
    assert last_rooms_event(srv, jid(name)) == {LOUNGE: "granted", doomed: "room-gone"}


def test_outcast_stays_banned_and_owner_stays_owner(srv):
    name = new_name("banned")
    srv.api("muc_set_affiliation", LOUNGE, jid(name), "outcast")
    srv.api("muc_set_affiliation", OPEN, jid(name), "owner")
    record = srv.api1("create_account", name, {"rooms": [LOUNGE, OPEN]})
    assert client.register(srv, name, PASSWORD, record["token"], login=False).registration
    assert affiliation(srv, LOUNGE, name) == "outcast"
    assert affiliation(srv, OPEN, name) == "owner"
    assert last_rooms_event(srv, jid(name)) == {LOUNGE: "banned", OPEN: "kept-owner"}
    with OnlineClient(srv, jid(name), PASSWORD) as online:
        assert wait_until(lambda: invitations(online.stanzas))
        assert [x["jid"] for _, x, _ in invitations(online.stanzas)] == [OPEN], "no invitation to a room one is banned from"
        assert LOUNGE not in bookmarks(online)


def test_deletion_removes_granted_memberships_only(srv):
    name = new_name("leaver")
    srv.api("muc_set_affiliation", SECRET, jid(name), "member")  # granted by hand, before the invite
    record = srv.api1("create_account", name, {"rooms": [LOUNGE, SECRET]})
    assert client.register(srv, name, PASSWORD, record["token"], login=False).registration
    assert last_rooms_event(srv, jid(name)) == {LOUNGE: "granted", SECRET: "kept-member"}
    assert srv.api1("delete_user", name)
    assert wait_until(lambda: affiliation(srv, LOUNGE, name) is None)
    assert affiliation(srv, SECRET, name) == "member", "a membership the invite did not grant stays"
    assert srv.api1("keyval_get", "invites_room_grants", name) is None


def test_stock_modules_register_with_such_an_invite(make_server):
    server = make_server(hosts={"localhost": {}}, components={MUC: ("muc", {})}, modules=MODULES)
    server.api("muc_create", LOUNGE, {"members_only": True})
    record = server.api1("create_account", None, {"rooms": [LOUNGE]})
    server.restart(impl="stock")
    name = new_name("stock")
    reg = client.register(server, name, PASSWORD, record["token"], login=True)
    assert reg.registration and reg.logged_in
    # Rooms are ignored there: no membership.
    assert server.api1("muc_affiliation", LOUNGE, jid(name)) is None
