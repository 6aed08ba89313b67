"""Reliability end to end (issue 12): deletions made outside the server, tokens kept out of the
log, module reloads between pre-auth and registration, and many streams racing one invite.
"""

from __future__ import annotations

import re
import secrets
import time

import pytest

import client
import rawxmpp
from register_client import (
    PASSWORD,
    expire,
    new_name,
    preauth_raw,
    register_raw,
    shared_server,
    user_exists,
    wait_until,
)


def person(server, prefix):
    name = new_name(prefix)
    server.create_user(name, PASSWORD)
    return name


def preauth(server, token):
    with rawxmpp.open_stream(server) as raw:
        return preauth_raw(raw, token)


# ---------------------------------------------------------------------- prosodyctl deluser


def test_invites_of_a_user_deleted_with_prosodyctl_die_with_the_account(make_server):
    """On 0.12 `prosodyctl deluser` runs in its own process and the server never hears of it; on
    13 it goes through the running server. Either way the deleted user's invites are dead, also
    once the name is registered again."""
    srv = make_server()
    alice, bob = person(srv, "alice"), person(srv, "bob")
    ibr = srv.api1("create_contact", alice, True)["token"]
    contact = srv.api1("create_contact", alice, False)["token"]
    befriend = srv.api1("create_account", None, {"roster_subscription": f"{alice}@localhost"})["token"]
    plain = srv.api1("create_account", None, {"source": f"{alice}@localhost"})["token"]
    assert preauth(srv, ibr)["ok"] and preauth(srv, befriend)["ok"]

    res = srv.prosodyctl("deluser", f"{alice}@localhost")
    assert res.returncode == 0, res
    assert wait_until(lambda: not user_exists(srv, alice)), "deleted"

    for token in (ibr, befriend):
        reply = preauth(srv, token)
        assert (reply["ok"], reply["condition"]) == (False, "item-not-found"), (token, reply)
    sub = client.subscribe_with_preauth(srv, f"{bob}@localhost", PASSWORD, f"{alice}@localhost", contact, wait=1.0)
    assert not sub.got_subscribed
    assert preauth(srv, plain)["ok"], "an invite that names no one to befriend stays valid"

    # The name registered again by someone else: still dead.
    srv.create_user(alice, "other password")
    for token in (ibr,):
        assert preauth(srv, token)["condition"] == "item-not-found"
    sub = client.subscribe_with_preauth(srv, f"{bob}@localhost", PASSWORD, f"{alice}@localhost", contact, wait=1.0)
    assert not sub.got_subscribed
    with rawxmpp.open_stream(srv) as raw:
        assert not preauth_raw(raw, ibr)["ok"]
        assert not register_raw(raw, new_name("late"))["ok"]


# ---------------------------------------------------------------------- tokens in the log


def test_no_full_token_in_the_server_log(make_server):
    """Debug logging is on in the harness. Pre-auth failures (unknown, used, expired), consumes,
    XEP-0379 (approved and refused) and a failed consume leave at most a short prefix."""
    srv = make_server(hosts={"localhost": {
        "storage": {"invite_token": "test_faulty", "invites": "test_faulty"}, "test_faulty_writes": "none",
    }})
    alice, bob, carol = (person(srv, p) for p in ("alice", "bob", "carol"))
    tokens = []

    used = srv.api1("create_account")["token"]
    tokens.append(used)
    with rawxmpp.open_stream(srv) as raw:
        assert preauth_raw(raw, used)["ok"]
        assert register_raw(raw, new_name("u"))["ok"]
    assert preauth(srv, used)["condition"] == "item-not-found"

    unknown = [secrets.token_urlsafe(18) for _ in range(3)]
    tokens += unknown
    for token in unknown:
        assert preauth(srv, token)["condition"] == "item-not-found"

    expired = srv.api1("create_account")
    tokens.append(expired["token"])
    expire(srv, expired)
    assert preauth(srv, expired["token"])["condition"] == "item-not-found"

    contact = srv.api1("create_contact", alice, False)["token"]
    tokens.append(contact)
    assert client.subscribe_with_preauth(srv, f"{bob}@localhost", PASSWORD, f"{alice}@localhost", contact).got_subscribed
    again = client.subscribe_with_preauth(srv, f"{carol}@localhost", PASSWORD, f"{alice}@localhost", contact, wait=1.0)
    assert not again.got_subscribed

    owed = srv.api1("create_account")["token"]
    tokens.append(owed)
    mark = srv.log_mark()
    with rawxmpp.open_stream(srv) as raw:
        assert preauth_raw(raw, owed)["ok"]
        srv.api("set_fault", srv.invite_store(), "set")
        assert register_raw(raw, new_name("o"))["ok"]
        line = srv.wait_for_log(r"Failed to consume invite", since=mark)
        srv.api("clear_faults")
    assert owed[:6] + "…" in line, line
    wait_until(lambda: srv.api1("store_get", None, owed) is None)

    log = srv.log_text()
    assert "debug" in log, "debug logging is on"
    leaked = [t for t in tokens if t in log]
    assert not leaked, [line for line in log.splitlines() if any(t in line for t in leaked)][:10]


# ---------------------------------------------------------------------- reloads mid-flow


@pytest.fixture(scope="module")
def reload_srv(e2e_base_dir):
    server = shared_server(e2e_base_dir, "reloads")
    yield server
    server.stop()
    problems = server.tracebacks()
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("name", ["invites", "invites_register", "invites_adhoc"])
def test_reload_between_preauth_and_registration_leaves_the_invite_usable_once(reload_srv, name):
    srv = reload_srv
    token = srv.api1("create_account")["token"]
    first, second = new_name("first"), new_name("second")
    with rawxmpp.open_stream(srv) as a, rawxmpp.open_stream(srv) as b:
        assert preauth_raw(a, token)["ok"] and preauth_raw(b, token)["ok"]
        srv.api("reload_module", name)
        assert register_raw(a, first)["ok"]
        refused = register_raw(b, second)
        assert not refused["ok"], refused
    assert preauth(srv, token)["condition"] == "item-not-found"
    assert [user_exists(srv, first), user_exists(srv, second)] == [True, False]
    # Still working after the reload.
    other = srv.api1("create_account")["token"]
    with rawxmpp.open_stream(srv) as raw:
        assert preauth_raw(raw, other)["ok"] and register_raw(raw, new_name("after"))["ok"]


@pytest.mark.parametrize("name", ["invites", "invites_register"])
def test_reload_keeps_an_owed_consume(make_server, name):
    srv = make_server(hosts={"localhost": {
        "storage": {"invite_token": "test_faulty", "invites": "test_faulty"}, "test_faulty_writes": "none",
    }})
    token = srv.api1("create_account")["token"]
    first, second = new_name("first"), new_name("second")
    with rawxmpp.open_stream(srv) as a:
        assert preauth_raw(a, token)["ok"]
        srv.api("set_fault", srv.invite_store(), "set")
        assert register_raw(a, first)["ok"]
        srv.api("reload_module", name)
        srv.api("clear_faults")
        with rawxmpp.open_stream(srv) as b:
            assert preauth_raw(b, token)["ok"], "still stored: the consume is owed"
            assert not register_raw(b, second)["ok"]
    assert wait_until(lambda: srv.api1("store_get", None, token) is None)
    assert [user_exists(srv, first), user_exists(srv, second)] == [True, False]


# ---------------------------------------------------------------------- races at scale


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_thousand_streams_race_one_single_use_invite(make_server):
    srv = make_server()
    token = srv.api1("create_account")["token"]
    names = [f"race{i:04d}{secrets.token_hex(2)}" for i in range(1000)]
    started = time.monotonic()
    results = rawxmpp.race_register(srv, token, names, timeout=60)
    took = time.monotonic() - started
    assert all(r["preauth_ok"] for r in results), [r for r in results if not r["preauth_ok"]][:3]
    winners = [r["username"] for r in results if r.get("register_ok")]
    assert len(winners) == 1, (len(winners), winners[:5])
    errors = {(r["register_error"] or {}).get("condition") for r in results if not r.get("register_ok")}
    assert errors <= {"not-allowed"}, errors
    assert user_exists(srv, winners[0])
    print(f"\n1000 streams raced one invite in {took:.1f}s: {len(winners)} account")
    assert re.match(r"race\d{4}", winners[0])
