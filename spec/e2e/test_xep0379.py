"""XEP-0379 pre-authenticated roster subscription, and registration with contact invites.

A `subscribe` carrying a valid contact token of the addressed user is approved
by the server, the token consumed and a `subscribe` sent back, so both end up
with `both` whether the inviter is online or not. Anything else is an
ordinary subscription request that reaches the user untouched.
"""

from __future__ import annotations

import pytest

import client
from online_client import OnlineClient
from rawxmpp import NS_PARS, local
from register_client import PASSWORD, contact_invite, expire, new_name, shared_server, user, wait_until

JID = "{}@localhost"


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    server = shared_server(e2e_base_dir, "xep0379")
    yield server
    server.stop()


def subscription(server, owner, contact):
    item = client.roster(server, JID.format(owner), PASSWORD).get(JID.format(contact))
    return item and item["subscription"]


def subscribe(server, sender, inviter, token, **kw):
    return client.subscribe_with_preauth(server, JID.format(sender), PASSWORD, JID.format(inviter), token, **kw)


def assert_mutual(server, result, sender, inviter):
    assert result.got_subscribed and result.got_subscribe, result.received
    assert result.roster[JID.format(inviter)]["subscription"] == "both", result.roster
    assert wait_until(lambda: subscription(server, inviter, sender) == "both"), subscription(server, inviter, sender)
    assert subscription(server, sender, inviter) == "both"


def is_request_with_preauth(sender):
    def match(el):
        return (local(el.tag) == "presence" and el.get("type") == "subscribe"
                and el.get("from", "").split("/")[0] == JID.format(sender)
                and el.find(f"{{{NS_PARS}}}preauth") is not None)
    return match


def assert_untouched(server, inviter_session, sender, inviter):
    """The request reached the inviter as a normal one, preauth child included; nothing approved."""
    assert inviter_session.wait_for(is_request_with_preauth(sender), timeout=5), "request not delivered"
    assert subscription(server, inviter, sender) in (None, "none")
    assert subscription(server, sender, inviter) in (None, "none")


# --------------------------------------------------------------------------
# valid tokens


@pytest.mark.deliberate_fix(1, stock_fixed_in="13")
def test_contact_only_token_inviter_online(srv):
    alice, bob = user(srv, "alice"), user(srv, "bob")
    token = contact_invite(srv, alice)["token"]
    with OnlineClient(srv, JID.format(alice), PASSWORD) as online:
        mark = online.mark()
        result = subscribe(srv, bob, alice, token)
        assert_mutual(srv, result, bob, alice)
        assert online.wait_for_roster_push(JID.format(bob), since=mark), online.roster_pushes(mark)
        # Approved by the server: the inviter is not asked.
        assert not online.wait_for(is_request_with_preauth(bob), timeout=0.2, since=mark)
    assert srv.api1("store_get", alice, token) is None, "the token is consumed"


@pytest.mark.deliberate_fix(1)
def test_contact_only_token_inviter_offline(srv):
    alice, bob = user(srv, "alice"), user(srv, "bob")
    token = contact_invite(srv, alice)["token"]
    result = subscribe(srv, bob, alice, token)
    assert_mutual(srv, result, bob, alice)
    assert srv.api1("store_get", alice, token) is None


def test_contact_and_registration_token_inviter_offline(srv):
    # Stock approves this one but relies on mod_presence to answer, which with the inviter
    # offline consults the contact's stale in-memory roster and never sends `subscribed`.
    alice, bob = user(srv, "alice"), user(srv, "bob")
    token = contact_invite(srv, alice, allow_registration=True)["token"]
    result = subscribe(srv, bob, alice, token)
    assert_mutual(srv, result, bob, alice)
    # Both halves are gone: it can no longer register an account either.
    assert srv.api1("store_get", alice, token) is None
    assert srv.api1("store_get", None, token) is None


# --------------------------------------------------------------------------
# tokens that must not do anything


@pytest.mark.deliberate_fix(1)
def test_token_of_another_user_does_nothing(srv):
    alice, bob, carol = user(srv, "alice"), user(srv, "bob"), user(srv, "carol")
    token = contact_invite(srv, alice)["token"]
    with OnlineClient(srv, JID.format(carol), PASSWORD) as online:
        result = subscribe(srv, bob, carol, token, wait=0.5)
        assert not result.got_subscribed
        assert_untouched(srv, online, bob, carol)
    # Still good for the user who issued it.
    assert srv.api1("store_get", alice, token) is not None
    assert_mutual(srv, subscribe(srv, bob, alice, token), bob, alice)


def test_unknown_token_falls_through(srv):
    alice, bob = user(srv, "alice"), user(srv, "bob")
    with OnlineClient(srv, JID.format(alice), PASSWORD) as online:
        result = subscribe(srv, bob, alice, "NoSuchToken0123456789abc", wait=0.5)
        assert not result.got_subscribed
        assert_untouched(srv, online, bob, alice)


def test_malformed_token_falls_through(srv):
    alice, bob = user(srv, "alice"), user(srv, "bob")
    with OnlineClient(srv, JID.format(alice), PASSWORD) as online:
        result = subscribe(srv, bob, alice, "not a token; ✓" * 50, wait=0.5)
        assert not result.got_subscribed
        assert_untouched(srv, online, bob, alice)


def test_used_token_falls_through(srv):
    alice, bob, dave = user(srv, "alice"), user(srv, "bob"), user(srv, "dave")
    token = contact_invite(srv, alice, allow_registration=True)["token"]
    with OnlineClient(srv, JID.format(alice), PASSWORD) as online:
        assert_mutual(srv, subscribe(srv, bob, alice, token), bob, alice)
        result = subscribe(srv, dave, alice, token, wait=0.5)
        assert not result.got_subscribed
        assert_untouched(srv, online, dave, alice)


def test_expired_token_falls_through(srv):
    alice, bob = user(srv, "alice"), user(srv, "bob")
    record = contact_invite(srv, alice)
    expire(srv, record)
    with OnlineClient(srv, JID.format(alice), PASSWORD) as online:
        result = subscribe(srv, bob, alice, record["token"], wait=0.5)
        assert not result.got_subscribed
        assert_untouched(srv, online, bob, alice)


# --------------------------------------------------------------------------
# registration with a contact invite (ibr=y)


def test_ibr_registration_inviter_online(srv):
    alice = user(srv, "alice")
    record = contact_invite(srv, alice, allow_registration=True)
    assert record["uri"].endswith(";ibr=y")
    newcomer = new_name("newcomer")
    with OnlineClient(srv, JID.format(alice), PASSWORD) as online:
        mark = online.mark()
        result = client.register(srv, newcomer, PASSWORD, record["token"])
        assert result.registration and result.logged_in, result
        assert online.wait_for_roster_push(JID.format(newcomer), subscription="both", since=mark), online.roster_pushes(mark)
        assert online.roster()[JID.format(newcomer)]["subscription"] == "both"
    assert subscription(srv, newcomer, alice) == "both"
    assert srv.api1("store_get", alice, record["token"]) is None
    assert srv.api1("store_get", None, record["token"]) is None


def test_ibr_registration_inviter_offline(srv):
    alice = user(srv, "alice")
    token = contact_invite(srv, alice, allow_registration=True)["token"]
    newcomer = new_name("newcomer")
    assert client.register(srv, newcomer, PASSWORD, token, login=False).ok
    assert subscription(srv, newcomer, alice) == "both"
    assert subscription(srv, alice, newcomer) == "both"


# --------------------------------------------------------------------------


def test_no_traceback_in_server_log(srv):
    srv.assert_no_tracebacks()
