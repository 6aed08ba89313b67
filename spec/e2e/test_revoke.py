"""Revocation answers what happened (README "Invite lifecycle"): revoking an invite that is no
longer pending says so — used, expired, revoked, unknown — on the admin shell, prosodyctl, the
API and the ad-hoc commands, and records, counts and fires nothing; a revocation racing
registrations ends in one story, told the same by the answer and the audit record. Stock
answers "Invitation deleted" to all of it.
"""

from __future__ import annotations

import threading
import time

import pytest

import adhoc_client
import client
import rawxmpp
from online_client import OnlineClient
from register_client import new_name, preauth_raw, register_raw

HOST = "localhost"
PW = "pw-revoke"
LIST = "urn:x-prosody-invites:commands#list"


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    from prosody import ProsodyServer
    server = ProsodyServer(e2e_base_dir / "revoke", hosts={HOST: {"admins": ["admin@localhost"]}})
    server.start()
    server.api("create_user", "admin", PW)
    yield server
    server.stop()
    server.assert_no_tracebacks()


def used_invite(srv) -> str:
    token = srv.api1("create_account")["token"]
    assert client.register(srv, new_name("used"), PW, token, login=False).ok
    return token


def expired_invite(srv) -> str:
    """Expired two hours ago (and purged, as the hourly purge would)."""
    invite = srv.api1("create_account")
    srv.api("store_set", None, invite["token"], dict(invite, expires=int(time.time()) - 7200))
    srv.api("purge")
    return invite["token"]


def revoked_invite(srv) -> str:
    token = srv.api1("create_account")["token"]
    assert srv.api("delete_account_invite", token, "admin@localhost") == [True]
    return token


STATES = {"used": used_invite, "expired": expired_invite, "revoked": revoked_invite,
          "unknown": lambda srv: "noSuchInviteEverMadeAAAA"}


@pytest.mark.parametrize("state", list(STATES))
def test_deleting_what_is_not_pending_says_what_became_of_it(srv, state):
    token = STATES[state](srv)
    audit = srv.api1("audit_get", token)
    events = len(srv.api1("lifecycle_events") or [])

    assert srv.api("delete_account_invite", token, "admin@localhost") == [None, "not-pending", state]
    shell = srv.shell("invite", "delete", HOST, token)
    assert not shell.ok and shell.text == f"The invitation is not pending: {state}", shell
    ctl = srv.prosodyctl("mod_invites", "delete", HOST, token)
    assert ctl.returncode == 1 and f"The invitation is not pending: {state}" in ctl.stderr, ctl

    assert srv.api1("audit_get", token) == audit, "nothing recorded"
    assert len(srv.api1("lifecycle_events") or []) == events, "nothing fired"


def test_a_pending_invite_is_deleted_once(srv):
    token = srv.api1("create_account")["token"]
    assert srv.shell("invite", "delete", HOST, token).text == "Invitation deleted"
    again = srv.shell("invite", "delete", HOST, token)
    assert not again.ok and again.text == "The invitation is not pending: revoked", again
    audit = srv.api1("audit_get", token)
    assert audit["revoked_by"] == "shell" and not audit["uses"]


def test_ad_hoc_revocation_counts_only_what_it_revoked(srv):
    first = srv.api1("create_account")["token"]
    second = srv.api1("create_account")["token"]
    with OnlineClient(srv, "admin@localhost/x", PW, presence=False, fetch_roster=False) as admin:
        listing = adhoc_client.parse_command_reply(admin.iq("set", HOST, adhoc_client.command_xml(LIST)))
        assert listing.status == "executing", listing.xml
        # Used between the listing and the admin's choice.
        assert client.register(srv, new_name("between"), PW, first, login=False).ok
        form = {"invites": [first, second]}
        reply = admin.iq("set", HOST, adhoc_client.command_xml(LIST, "complete", listing.sessionid, form))
        done = adhoc_client.parse_command_reply(reply, listing.sessionid)
    assert done.status == "completed", done.xml
    assert ("info", "Revoked 1 invites; 1 were not pending invites of this list") in done.notes, done.notes
    assert srv.api1("inspect", first)["state"] == "used"
    assert srv.api1("inspect", second)["state"] == "revoked"


def test_a_revocation_racing_registrations_ends_in_one_story(srv):
    stories = set()
    for _ in range(6):
        token = srv.api1("create_account")["token"]
        names = [new_name("racer") for _ in range(3)]
        streams = [rawxmpp.open_stream(srv) for _ in names]
        answer = {}
        try:
            assert all(preauth_raw(raw, token)["ok"] for raw in streams)
            barrier = threading.Barrier(len(names) + 1)
            results = [None] * len(names)

            def register(i):
                barrier.wait(10)
                results[i] = register_raw(streams[i], names[i])

            def revoke():
                barrier.wait(10)
                answer["result"] = srv.api("delete_account_invite", token, "admin@localhost")

            threads = [threading.Thread(target=register, args=(i,)) for i in range(len(names))]
            threads.append(threading.Thread(target=revoke))
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
        finally:
            for raw in streams:
                raw.close()
        winners = [n for n, r in zip(names, results) if r and r["ok"]]
        audit = srv.api1("audit_get", token)
        if answer["result"] == [True]:  # revoked first: nobody registered, the record says revoked
            assert winners == [] and audit["revoked_at"] and not audit["uses"], (winners, audit)
            stories.add("revoked")
        else:  # used first: one account, the answer and the record say used
            assert answer["result"] == [None, "not-pending", "used"], answer
            assert len(winners) == 1 and len(audit["uses"]) == 1 and "revoked_at" not in audit, (winners, audit)
            stories.add("used")
        assert [n for n in names if srv.api1("user_exists", n)] == winners
    assert stories, "every round told one story"
