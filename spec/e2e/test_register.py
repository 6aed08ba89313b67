"""mod_invites_register end to end: stream features, XEP-0445 pre-auth, invite registration.

One invite-only server is shared by the module (every test uses its own
usernames and invites); servers with other settings are made per test.
Tests marked deliberate_fix(N) check README "Stock defects fixed" item N and fail against
Prosody's stock modules (INVITES_IMPL=stock).
"""

from __future__ import annotations

import pytest

import client
import rawxmpp
from prosody_config import DEFAULT_MODULES
from prosody_host import prosody_version
from rawxmpp import NS_IBR_TOKEN, NS_INVITE
from register_client import (
    INVALID_TOKEN_TEXT,
    INVITE_ONLY_TEXT,
    PASSWORD,
    account_invite,
    contact_invite,
    expire,
    new_name,
    preauth,
    preauth_raw,
    register_raw,
    reset_invite,
    shared_server,
    user,
    user_exists,
)


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    server = shared_server(e2e_base_dir, "register-invite-only")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_srv(e2e_base_dir):
    """Open registration (registration_invite_only = false), invites still honoured."""
    server = shared_server(
        e2e_base_dir, "register-open",
        modules=[*DEFAULT_MODULES, "register"],
        options={"registration_invite_only": False},
    )
    yield server
    server.stop()


def register(server, username, token=None, password=PASSWORD, login=True):
    return client.register(server, username, password, token, login=login)


# --------------------------------------------------------------------------
# stream features


def test_features_offered_on_unauthenticated_streams(srv):
    features = rawxmpp.stream_features(srv)
    names = set(rawxmpp.children(features))
    assert ("register", NS_INVITE) in names
    assert ("register", NS_IBR_TOKEN) in names


def test_features_not_offered_after_login(srv):
    name = user(srv)
    with rawxmpp.open_stream(srv) as raw:
        assert raw.auth_plain(name, PASSWORD)
        names = set(rawxmpp.children(raw.features))
    assert ("register", NS_INVITE) not in names
    assert ("register", NS_IBR_TOKEN) not in names


def test_features_withheld_from_plain_streams_when_encryption_required(make_server):
    server = make_server(options={"c2s_require_encryption": True})
    try:
        names = set(rawxmpp.children(rawxmpp.stream_features(server)))
    except rawxmpp.StreamClosed as e:
        # Without TLS on offer Prosody closes a stream that has no features at all.
        assert "No stream features" in str(e), e
        return
    assert ("register", NS_INVITE) not in names
    assert ("register", NS_IBR_TOKEN) not in names


# --------------------------------------------------------------------------
# pre-auth (XEP-0445)


def test_preauth_valid_token(srv):
    token = account_invite(srv)["token"]
    reply = preauth(srv, token)
    assert reply["ok"] and reply["children"] == 0, reply
    # Validating is not using: the invite is still there.
    assert srv.api1("store_get", None, token)


@pytest.mark.deliberate_fix(9)
def test_preauth_unknown_token_is_item_not_found(srv):
    reply = preauth(srv, "NoSuchToken0123456789abc")
    assert (reply["type"], reply["condition"], reply["text"]) == ("cancel", "item-not-found", INVALID_TOKEN_TEXT)


@pytest.mark.deliberate_fix(9)
def test_preauth_expired_token_is_item_not_found(srv):
    record = account_invite(srv)
    expire(srv, record)
    reply = preauth(srv, record["token"])
    assert (reply["type"], reply["condition"], reply["text"]) == ("cancel", "item-not-found", INVALID_TOKEN_TEXT)


@pytest.mark.deliberate_fix(9)
def test_preauth_used_token_is_item_not_found(srv):
    token = account_invite(srv)["token"]
    assert register(srv, new_name(), token, login=False).ok
    reply = preauth(srv, token)
    assert (reply["type"], reply["condition"], reply["text"]) == ("cancel", "item-not-found", INVALID_TOKEN_TEXT)


@pytest.mark.deliberate_fix(9)
@pytest.mark.parametrize("token", ["", "x" * 10240, "tökén-ünïcode-✓", "a;b=c&d"], ids=["empty", "10KB", "non-ASCII", "query"])
def test_preauth_malformed_token_is_item_not_found(srv, token):
    with rawxmpp.open_stream(srv) as raw:
        reply = preauth_raw(raw, token)
        assert (reply["type"], reply["condition"]) == ("cancel", "item-not-found"), reply
        # The stream survives bad input.
        assert preauth_raw(raw, account_invite(srv)["token"])["ok"]


@pytest.mark.deliberate_fix(9)
def test_preauth_without_token_is_bad_request(srv):
    reply = preauth(srv, None)
    assert (reply["type"], reply["condition"]) == ("modify", "bad-request"), reply


@pytest.mark.deliberate_fix(9)
def test_preauth_get_is_bad_request(srv):
    token = account_invite(srv)["token"]
    reply = preauth(srv, token, iq_type="get")
    assert (reply["type"], reply["condition"]) == ("modify", "bad-request"), reply


@pytest.mark.deliberate_fix(9)
def test_failed_preauth_logged_at_info_with_address(srv):
    mark = srv.log_mark()
    preauth(srv, "NoSuchToken0123456789xyz")
    srv.wait_for_log(r"\tinfo\t.*(?i:invite|pre-?auth).*127\.0\.0\.1", since=mark)


def test_loopback_is_exempt_from_the_throttle_by_default(srv):
    with rawxmpp.open_stream(srv) as raw:
        for _ in range(15):
            assert preauth_raw(raw, "NoSuchToken0123456789abc")["condition"] != "policy-violation"
        assert preauth_raw(raw, account_invite(srv)["token"])["ok"]


@pytest.mark.deliberate_fix(9)
def test_repeated_failures_are_throttled(make_server):
    server = make_server(options={
        "registration_whitelist": [],  # loopback is exempt by default
        "invites_preauth_max_failures": 3,
        "invites_preauth_failure_window": 60,
    })
    valid = account_invite(server)["token"]
    with rawxmpp.open_stream(server) as raw:
        for _ in range(3):
            assert preauth_raw(raw, "NoSuchToken0123456789abc")["condition"] == "item-not-found"
        # Once throttled, even a valid token is refused, on any stream from the address.
        assert preauth_raw(raw, valid)["condition"] == "policy-violation"
    reply = preauth(server, valid)
    assert (reply["type"], reply["condition"]) == ("wait", "policy-violation"), reply
    assert server.api1("store_get", None, valid), "a throttled attempt must not use the invite"


# --------------------------------------------------------------------------
# registration, invite-only


def test_register_with_invite(srv):
    token = account_invite(srv)["token"]
    name = new_name()
    result = register(srv, name, token)
    assert result.preauth and result.registration and result.logged_in, result
    assert srv.api1("store_get", None, token) is None, "a single-use invite is consumed"


def test_register_without_invite_is_refused(srv):
    name = new_name()
    result = register(srv, name)
    assert not result.registration
    reg = result.registration
    assert (reg.error_type, reg.condition, reg.text) == ("modify", "not-acceptable", INVITE_ONLY_TEXT)
    assert not user_exists(srv, name)


def test_register_after_failed_preauth_is_refused(srv):
    name = new_name()
    result = register(srv, name, "NoSuchToken0123456789abc")
    assert not result.preauth and not result.registration
    assert not user_exists(srv, name)


def roles_of(srv, name) -> list:
    """The account's roles: on 13 its primary role first (accounts without a role of their own
    have prosody:registered), on 0.12 the names in the roles store."""
    return srv.api1("user_roles", name) or []


def granted(roles: list) -> list:
    """What roles_of() shows after registering with an invite granting `roles` (first = primary)."""
    return roles if prosody_version() >= (13,) else sorted(roles)


def test_roles_from_invite_are_granted(srv):
    # The set 0.12's command line writes: stock 13 calls it legacy and grants nothing.
    token = account_invite(srv, None, {"roles": {"prosody:admin": True}})["token"]
    name = new_name("admin")
    assert register(srv, name, token, login=False).ok
    assert roles_of(srv, name) == ["prosody:admin"]


def test_roles_given_as_array_are_stored_as_map(srv):
    # The list 13 writes (first = primary): on 0.12 kept as the set that release reads.
    token = account_invite(srv, None, {"roles": ["prosody:admin"]})["token"]
    name = new_name("admin")
    assert register(srv, name, token, login=False).ok
    assert roles_of(srv, name) == ["prosody:admin"]
    if prosody_version() < (13,):
        assert srv.api1("keyval_get", "roles", name) == {"prosody:admin": True}


def test_primary_and_secondary_roles(srv):
    token = account_invite(srv, None, {"roles": ["prosody:member", "prosody:admin"]})["token"]
    name = new_name("member")
    assert register(srv, name, token, login=False).ok
    assert roles_of(srv, name) == granted(["prosody:member", "prosody:admin"])


@pytest.mark.only_on("13", reason="0.12 keeps any role name in its roles store; 13 raises for unknown roles")
def test_unknown_role_is_logged_and_the_account_kept(srv):
    token = account_invite(srv, None, {"roles": ["invites:no-such-role", "prosody:admin"]})["token"]
    name = new_name("odd")
    mark = srv.log_mark()
    assert register(srv, name, token, login=False).ok
    assert user_exists(srv, name)
    assert roles_of(srv, name) == ["prosody:admin"]
    line = srv.wait_for_log(r"invites:no-such-role", since=mark)
    assert "\terror\t" in line and name in line, line


def test_prosodyctl_admin_invite_grants_admin(srv):
    token = srv.generate_invite(None, "--admin").rsplit("preauth=", 1)[-1]
    name = new_name("admin")
    assert register(srv, name, token, login=False).ok
    assert roles_of(srv, name) == ["prosody:admin"]


def test_validated_stream_survives_expiry(srv):
    """XEP-0445: expiry is checked at pre-auth only."""
    record = account_invite(srv)
    name = new_name()
    with rawxmpp.open_stream(srv) as raw:
        assert preauth_raw(raw, record["token"])["ok"]
        expire(srv, record)
        assert register_raw(raw, name)["ok"]
    assert user_exists(srv, name)


# --------------------------------------------------------------------------
# username-restricted invites


@pytest.mark.deliberate_fix(2)
def test_restricted_invite_registers_only_its_username(srv):
    bob = new_name("bob")
    token = account_invite(srv, bob)["token"]
    mallory = new_name("mallory")
    result = register(srv, mallory, token, login=False)
    assert result.preauth and not result.registration, result
    assert not user_exists(srv, mallory)
    result = register(srv, bob, token)
    assert result.registration and result.logged_in, result


@pytest.mark.deliberate_fix(2)
def test_restricted_name_is_reserved_until_expiry(srv):
    bob = new_name("bob")
    record = account_invite(srv, bob)
    other = account_invite(srv)["token"]
    result = register(srv, bob, other, login=False)
    assert result.preauth and not result.registration, result
    assert result.registration.condition == "conflict", result.registration
    assert not user_exists(srv, bob)
    # Once the reserving invite has expired the name is free again.
    expire(srv, record)
    assert register(srv, bob, other, login=False).ok


@pytest.mark.deliberate_fix(2)
def test_reserved_name_refused_on_open_server(open_srv):
    bob = new_name("bob")
    account_invite(open_srv, bob)
    result = register(open_srv, bob, login=False)
    assert not result.registration and result.registration.condition == "conflict", result.registration
    assert not user_exists(open_srv, bob)


# --------------------------------------------------------------------------
# password-reset invites


def test_reset_invite_resets_the_password(srv):
    carol = user(srv, "carol", password="old password")
    token = reset_invite(srv, carol)["token"]
    result = register(srv, carol, token, password="new password", login=False)
    assert result.registration, result
    assert client.can_login(srv, f"{carol}@localhost", "new password")
    assert not client.can_login(srv, f"{carol}@localhost", "old password")
    assert srv.api1("store_get", None, token) is None


@pytest.mark.deliberate_fix(3)
def test_reset_invite_never_creates_another_account(srv):
    carol = user(srv, "carol", password="old password")
    token = reset_invite(srv, carol)["token"]
    mallory = new_name("mallory")
    result = register(srv, mallory, token, login=False)
    assert result.preauth and not result.registration, result
    assert not user_exists(srv, mallory)
    assert client.can_login(srv, f"{carol}@localhost", "old password")


@pytest.mark.deliberate_fix(3)
def test_reset_invite_of_a_missing_account_creates_nothing(srv):
    ghost = new_name("ghost")
    token = reset_invite(srv, ghost)["token"]
    result = register(srv, ghost, token, login=False)
    assert result.preauth and not result.registration, result
    assert not user_exists(srv, ghost)


# --------------------------------------------------------------------------
# single use


@pytest.mark.deliberate_fix(4)
def test_same_stream_cannot_register_twice(srv):
    token = account_invite(srv)["token"]
    first, second = new_name(), new_name()
    with rawxmpp.open_stream(srv) as raw:
        assert preauth_raw(raw, token)["ok"]
        assert register_raw(raw, first)["ok"]
        reply = register_raw(raw, second)
    assert not reply["ok"], reply
    assert user_exists(srv, first) and not user_exists(srv, second)


@pytest.mark.deliberate_fix(4)
def test_racing_streams_create_exactly_one_account(srv):
    token = account_invite(srv)["token"]
    names = [new_name("racer") for _ in range(5)]
    results = rawxmpp.race_register(srv, token, names, password=PASSWORD)
    assert all(r["preauth_ok"] for r in results), results
    winners = [r["username"] for r in results if r["register_ok"]]
    assert len(winners) == 1, results
    assert [n for n in names if user_exists(srv, n)] == winners


@pytest.mark.deliberate_fix(4)
def test_invite_used_elsewhere_after_preauth_is_refused(srv):
    token = account_invite(srv)["token"]
    name = new_name()
    with rawxmpp.open_stream(srv) as raw:
        assert preauth_raw(raw, token)["ok"]
        # Meanwhile prosodyctl, a web page or an admin uses or revokes it.
        assert srv.api1("delete_account_invite", token)
        reply = register_raw(raw, name)
    assert not reply["ok"], reply
    assert not user_exists(srv, name)


def test_reusable_invite_registers_several_accounts(srv):
    record = srv.api1("create_group", [], None, 3600)
    names = [new_name("member") for _ in range(2)]
    for name in names:
        assert register(srv, name, record["token"], login=False).ok
    assert all(user_exists(srv, n) for n in names)


# --------------------------------------------------------------------------
# open registration (registration_invite_only = false)


def test_open_server_registers_without_invite(open_srv):
    name = new_name()
    result = register(open_srv, name)
    assert result.registration and result.logged_in, result


def test_open_server_honours_invites(open_srv):
    inviter = user(open_srv, "inviter")
    record = contact_invite(open_srv, inviter, allow_registration=True)
    name = new_name()
    assert register(open_srv, name, record["token"], login=False).ok
    assert open_srv.api1("store_get", None, record["token"]) is None
    assert client.roster(open_srv, f"{name}@localhost", PASSWORD)[f"{inviter}@localhost"]["subscription"] == "both"


@pytest.mark.deliberate_fix(2)
def test_open_server_enforces_restricted_invites(open_srv):
    bob = new_name("bob")
    token = account_invite(open_srv, bob)["token"]
    mallory = new_name("mallory")
    result = register(open_srv, mallory, token, login=False)
    assert result.preauth and not result.registration, result
    assert not user_exists(open_srv, mallory)


# --------------------------------------------------------------------------
# XEP-0401: ibr=y only when invitees can register


@pytest.mark.deliberate_fix(7)
def test_no_ibr_flag_without_a_way_to_register(make_server):
    server = make_server(modules=[m for m in DEFAULT_MODULES if m != "invites_register"])
    alice = user(server, "alice")
    record = server.api1("create_contact", alice, True)
    assert ";ibr=y" not in record["uri"], record["uri"]
    assert server.api1("store_get", None, record["token"]) is None


def test_ibr_flag_when_registration_is_possible(srv):
    alice = user(srv, "alice")
    assert contact_invite(srv, alice, allow_registration=True)["uri"].endswith(";ibr=y")


# --------------------------------------------------------------------------


def test_no_traceback_in_server_logs(srv, open_srv):
    srv.assert_no_tracebacks()
    open_srv.assert_no_tracebacks()
