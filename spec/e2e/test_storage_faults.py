"""Storage failures end to end (README "Reliability"): the invite store fails on demand
(spec/e2e/modules/mod_storage_test_faulty.lua, through the test API's set_fault) for create,
pre-auth, registration, XEP-0379, revoke, purge and the ad-hoc commands. Each must give the client
a proper error, leave no traceback (the fixtures check the log), no half-written invite, no invite
usable twice and no account lost.
"""

from __future__ import annotations

import pytest

import client
import rawxmpp
from register_client import (
    PASSWORD,
    new_name,
    preauth_raw,
    register_raw,
    shared_server,
    user_exists,
    wait_until,
)

ADMIN = "admin"


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    # The stock layout, whose two levels these tests fail one at a time (scope "user"/"host");
    # the per-invite layout's failures are the records_srv tests at the end.
    server = shared_server(e2e_base_dir, "storage-faults", hosts={"localhost": {
        "admins": ["admin@localhost"],
        "storage": {"invite_token": "test_faulty"},
        "test_faulty_writes": "none",
        "invites_storage_layout": "stock",
    }})
    server.create_user(ADMIN, PASSWORD)
    yield server
    server.stop()
    problems = server.tracebacks()
    assert not problems, "\n".join(problems[:20])


@pytest.fixture(scope="module")
def records_srv(e2e_base_dir):
    """The per-invite layout (the default): its entries fail on demand, as a whole."""
    server = shared_server(e2e_base_dir, "storage-faults-records", hosts={"localhost": {
        "admins": ["admin@localhost"],
        "storage": {"invite_token": "test_faulty", "invites": "test_faulty", "invites_by_name": "test_faulty"},
        "test_faulty_writes": "none",
        "invites_storage_layout": "records",
    }})
    server.create_user(ADMIN, PASSWORD)
    yield server
    server.stop()
    problems = server.tracebacks()
    assert not problems, "\n".join(problems[:20])


@pytest.fixture(params=["stock", "records"])
def any_srv(request):
    """The tests that mean the same in both layouts run in each."""
    return request.getfixturevalue("srv" if request.param == "stock" else "records_srv")


@pytest.fixture(autouse=True)
def no_faults(request):
    name = next((n for n in ("srv", "any_srv") if n in request.fixturenames), None)
    if name:
        server = request.getfixturevalue(name)
        server.api("clear_faults")
        server.api("fault_hits")
        yield
        server.api("clear_faults")
    else:
        yield


def fault(server, op, scope="all", count=None, skip=None):
    server.api("set_fault", server.invite_store(), op, scope, count, skip)


def hits(server):
    return server.api1("fault_hits") or []


def stored(server, token, user=None):
    return server.api1("store_get", user, token)


def person(server, prefix):
    name = new_name(prefix)
    server.create_user(name, PASSWORD)
    return name


# ---------------------------------------------------------------------- create


@pytest.mark.parametrize("op", ["get", "set"])
def test_create_fails_whole(any_srv, op):
    alice = person(any_srv, "alice")
    before = any_srv.api1("store_all", None) or {}
    fault(any_srv, op)
    if op == "get" and any_srv.storage_layout() == "records":
        # The per-invite layout creates an account invite with one write and no read.
        assert any_srv.api1("create_account")["token"]
        assert not hits(any_srv), "no read to fail"
        return
    assert any_srv.api("create_account") == [None, "internal-server-error"]
    assert any_srv.api("create_contact", alice, True) == [None, "internal-server-error"]
    assert any_srv.api("create_account_reset", alice) == [None, "internal-server-error"]
    assert hits(any_srv), "the fault was met"
    any_srv.api("clear_faults")
    assert (any_srv.api1("store_all", None) or {}) == before, "nothing half-written"
    assert not any_srv.api1("store_all", alice)


def test_create_contact_rolls_back_when_the_inviters_half_fails(srv):
    alice = person(srv, "alice")
    before = srv.api1("store_all", None) or {}
    fault(srv, "set", scope="user")
    assert srv.api("create_contact", alice, True) == [None, "internal-server-error"]
    srv.api("clear_faults")
    assert (srv.api1("store_all", None) or {}) == before
    assert srv.api1("store_all", alice) is None


def test_shell_create_and_delete_report_the_failure(any_srv):
    fault(any_srv, "set")
    res = any_srv.shell("invite", "create_account", "localhost")
    assert not res.ok, res
    any_srv.api("clear_faults")
    token = any_srv.api1("create_account")["token"]
    fault(any_srv, "get")
    res = any_srv.shell("invite", "delete", "localhost", token)
    assert not res.ok, res
    any_srv.api("clear_faults")
    assert stored(any_srv, token), "not revoked"


# ---------------------------------------------------------------------- pre-auth and registration


def test_preauth_read_failure_is_a_wait_error_and_harmless(any_srv):
    token = any_srv.api1("create_account")["token"]
    with rawxmpp.open_stream(any_srv) as raw:
        fault(any_srv, "get")
        reply = preauth_raw(raw, token)
        assert (reply["ok"], reply["type"], reply["condition"]) == (False, "wait", "internal-server-error"), reply
        any_srv.api("clear_faults")
        assert preauth_raw(raw, token)["ok"], "the invite is intact"
        name = new_name("pa")
        assert register_raw(raw, name)["ok"]
    assert user_exists(any_srv, name)
    assert stored(any_srv, token) is None


def test_failed_consume_never_lets_the_invite_register_twice(any_srv):
    token = any_srv.api1("create_account")["token"]
    first, second, third = new_name("first"), new_name("second"), new_name("third")
    a, b = rawxmpp.open_stream(any_srv), rawxmpp.open_stream(any_srv)
    try:
        assert preauth_raw(a, token)["ok"] and preauth_raw(b, token)["ok"]
        mark = any_srv.log_mark()
        fault(any_srv, "set")
        assert register_raw(a, first)["ok"], "the account is made; only the consume fails"
        any_srv.wait_for_log(r"\berror\b.*Failed to consume invite", since=mark)
        any_srv.api("clear_faults")
        assert stored(any_srv, token), "still stored: the consume failed"
        refused = register_raw(b, second)
        assert (refused["ok"], refused["condition"]) == (False, "not-allowed"), refused
        assert not register_raw(a, third)["ok"], "not twice on the same stream"
    finally:
        a.close()
    # The stream ended: the owed consume is retried, and the invite is gone for good.
    assert wait_until(lambda: stored(any_srv, token) is None)
    try:
        assert not register_raw(b, second)["ok"]
    finally:
        b.close()
    with rawxmpp.open_stream(any_srv) as raw:
        assert preauth_raw(raw, token)["condition"] == "item-not-found"
    assert [user_exists(any_srv, n) for n in (first, second, third)] == [True, False, False]


def test_consume_still_owed_after_the_stream_ends_while_storage_is_down(srv):
    token = srv.api1("create_account")["token"]
    first, second = new_name("first"), new_name("second")
    mark = srv.log_mark()
    fault(srv, "set")
    with rawxmpp.open_stream(srv) as a:
        assert preauth_raw(a, token)["ok"]
        assert register_raw(a, first)["ok"]
    # Closed while the store still fails: the retry at close fails too; the claim stays.
    assert wait_until(lambda: srv.log_text()[mark:].count("\terror\tFailed to consume invite") >= 2)
    srv.api("clear_faults")
    with rawxmpp.open_stream(srv) as b:
        assert preauth_raw(b, token)["ok"], "still stored"
        refused = register_raw(b, second)
        assert (refused["ok"], refused["condition"]) == (False, "not-allowed"), refused
    assert user_exists(srv, first) and not user_exists(srv, second)


def test_registration_waits_when_the_invite_cannot_be_read(any_srv):
    """After a reload the validated invite is unknown to the new instance: storage must tell.
    A failed read is a wait error, not "used"."""
    token = any_srv.api1("create_account")["token"]
    name = new_name("reload")
    with rawxmpp.open_stream(any_srv) as raw:
        assert preauth_raw(raw, token)["ok"]
        any_srv.api("reload_module", "invites")
        fault(any_srv, "get")
        refused = register_raw(raw, name)
        assert (refused["ok"], refused["type"], refused["condition"]) == (False, "wait", "internal-server-error"), refused
        any_srv.api("clear_faults")
        assert not user_exists(any_srv, name)
        assert register_raw(raw, name)["ok"], "fine once storage answers"
    assert stored(any_srv, token) is None


# ---------------------------------------------------------------------- XEP-0379


@pytest.mark.parametrize("op", ["get", "set"])
def test_contact_token_meeting_a_failure_approves_nothing_and_stays_usable_once(srv, op):
    alice, bob, carol, dave = (person(srv, p) for p in ("alice", "bob", "carol", "dave"))
    token = srv.api1("create_contact", alice, False)["token"]
    fault(srv, op)
    result = client.subscribe_with_preauth(srv, f"{bob}@localhost", PASSWORD, f"{alice}@localhost", token, wait=1.0)
    srv.api("clear_faults")
    assert not result.got_subscribed, "not approved by the server"
    assert stored(srv, token, alice) is not None, "token intact"
    result = client.subscribe_with_preauth(srv, f"{carol}@localhost", PASSWORD, f"{alice}@localhost", token)
    assert result.got_subscribed, result.received
    result = client.subscribe_with_preauth(srv, f"{dave}@localhost", PASSWORD, f"{alice}@localhost", token, wait=1.0)
    assert not result.got_subscribed, "used once only"


# ---------------------------------------------------------------------- revoke


def test_revoke_refuses_what_it_cannot_read_and_keeps_both_halves(srv):
    alice = person(srv, "alice")
    token = srv.api1("create_contact", alice, True)["token"]
    fault(srv, "get")
    assert srv.api("delete_account_invite", token) == [None, "internal-server-error"]
    srv.api("clear_faults")
    assert stored(srv, token) and stored(srv, token, alice)
    assert srv.api("delete_account_invite", token) == [True]
    assert stored(srv, token) is None and stored(srv, token, alice) is None


def test_revoke_failing_half_way_leaves_a_dead_invite(srv):
    alice = person(srv, "alice")
    token = srv.api1("create_contact", alice, True)["token"]
    # The inviter's half goes first; the host-level write fails.
    fault(srv, "set", scope="host")
    assert srv.api("delete_account_invite", token) == [None, "internal-server-error"]
    srv.api("clear_faults")
    assert stored(srv, token, alice) is None
    with rawxmpp.open_stream(srv) as raw:
        assert preauth_raw(raw, token)["condition"] == "item-not-found"
    assert srv.api("get", token, alice) == [None, "token-invalid"]


# ---------------------------------------------------------------------- purge


@pytest.mark.parametrize("op", ["get", "set", "users"])
def test_purge_meeting_a_failure_logs_and_keeps_going(srv, op):
    alice = person(srv, "alice")
    past = int(srv.api1("now")) - 7200
    token = srv.api1("create_contact", alice, True)["token"]
    record = stored(srv, token)
    record["expires"] = past
    srv.api("store_set", None, token, record)
    srv.api("store_set", alice, token, past)
    mark = srv.log_mark()
    fault(srv, op)
    srv.api("purge")  # raises (ApiError) if the purge raised
    assert hits(srv)
    srv.wait_for_log(r"\berror\b.*Failed to", since=mark)
    srv.api("clear_faults")
    srv.api("purge")
    assert stored(srv, token) is None and stored(srv, token, alice) is None


def test_user_deleted_clean_up_meeting_a_failure_is_logged(srv):
    alice = person(srv, "alice")
    srv.api1("create_contact", alice, True)
    mark = srv.log_mark()
    fault(srv, "get")
    assert srv.api1("delete_user", alice)
    srv.wait_for_log(r"\berror\b.*deleted user", since=mark)
    srv.api("clear_faults")
    assert not user_exists(srv, alice)


# ---------------------------------------------------------------------- ad-hoc commands


@pytest.mark.parametrize("op", ["get", "set"])
def test_adhoc_commands_answer_storage_failures_with_a_command_error(srv, op):
    alice = person(srv, "alice")
    before = srv.api1("store_all", None) or {}
    commands = [
        (f"{alice}@localhost", "urn:xmpp:invite#invite", None),
        (f"{ADMIN}@localhost", "urn:xmpp:invite#create-account", {"username": new_name("named")}),
        (f"{ADMIN}@localhost", "urn:xmpp:invite#create-account", {"username": ""}),
        (f"{ADMIN}@localhost", "urn:xmpp:invite#create-reset", {"accountjid": f"{alice}@localhost"}),
    ]
    for jid, node, form in commands:
        fault(srv, op)
        result = client.adhoc(srv, jid, PASSWORD, node, form)
        srv.api("clear_faults")
        assert result.error is not None, (node, result.xml)
        assert result.error.condition == "internal-server-error", (node, result.xml)
        assert result.status != "completed", result.xml
    assert (srv.api1("store_all", None) or {}) == before
    assert srv.api1("store_all", alice) is None
