"""Smoke tests for the e2e harness itself.

Implementation-independent: they hold for Prosody's stock modules
(INVITES_IMPL=stock) as well as for ours, and prove that the harness
(server control, prosodyctl, admin shell, test API, raw XML and slixmpp
clients) works before any behaviour test relies on it.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

import client
import rawxmpp
from online_client import OnlineClient
from prosody_ctl import last_line
from prosody_host import prosody_version


def unknown_host_error(host: str) -> str:
    """What the admin shell says for a host without mod_invites (13's shell checks hosts itself)."""
    return "mod_invites not loaded on this host" if prosody_version() < (13,) else f"Unknown host: {host}"

HOST = "localhost"
REGISTER_URI = re.compile(r"^xmpp:localhost\?register;preauth=([A-Za-z0-9_-]{16,})$")
INVALID_TOKEN_TEXT = "The invite token is invalid or expired"
INVITE_ONLY_TEXT = "Registration on this server is through invitation only"


def token_of(uri: str) -> str:
    m = REGISTER_URI.match(uri)
    assert m, f"not an account invite URI for {HOST}: {uri!r}"
    return m.group(1)


def port_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def test_server_starts_and_stops_cleanly(server):
    assert server.running, server.diagnostics()
    assert not port_closed(server.c2s_port)
    assert server.module_path("invites"), "mod_invites is not loaded"
    rc = server.stop()
    assert rc == 0, f"prosody exited with {rc}\n{server.diagnostics()}"
    assert port_closed(server.c2s_port)
    assert "Shutdown complete" in server.log_text()


def test_prosodyctl_generate_prints_register_uri(server):
    res = server.prosodyctl("mod_invites", "generate", HOST)
    assert res.returncode == 0, res
    token = token_of(last_line(res.stdout))
    # The invite must really land in the server's store (prosodyctl is a
    # separate process writing the same data directory).
    record = server.api1("store_get", None, token)
    assert record and record["token"] == token and record["type"] == "register", record


def test_generated_invite_registers_an_account_that_can_log_in(server):
    token = token_of(server.generate_invite(HOST))
    result = client.register(server, "alice", "s3cret-pw", token)
    assert result.has_feature("register", "urn:xmpp:ibr-token:0"), result.features
    assert result.preauth, result.preauth
    assert result.registration, result.registration
    assert result.logged_in, result
    assert client.can_login(server, "alice@localhost", "s3cret-pw")
    assert not client.can_login(server, "alice@localhost", "wrong")
    # A single-use invite is gone once used.
    assert server.api1("store_get", None, token) is None


def test_admin_shell_create_account(server):
    res = server.shell('invite:create_account("localhost")')
    assert res.ok, res
    token = token_of(res.text)
    assert server.api1("store_get", None, token)["type"] == "register"

    res = server.shell('invite:create_account("nosuchhost.invalid")')
    assert not res.ok, res
    assert res.text == unknown_host_error("nosuchhost.invalid"), res


def test_admin_shell_several_commands_on_one_connection(server):
    first, second = server.shell_lines('invite:create_account("localhost")', 'invite:create_account("nope.invalid")')
    assert first.ok and REGISTER_URI.match(first.text), first
    assert not second.ok and second.text == unknown_host_error("nope.invalid"), second


def test_api_create_account_returns_record(server):
    before = int(time.time())
    record = server.api1("create_account")
    assert isinstance(record, dict), record
    assert record["type"] == "register"
    assert record["jid"] == HOST
    assert token_of(record["uri"]) == record["token"]
    assert isinstance(record["expires"], int) and record["expires"] >= before + 86400, record
    pending = dict(server.api1("pending_account_invites"))
    assert record["token"] in pending


def test_api_reports_errors_as_values_and_raised_errors_as_exceptions(server):
    assert server.api("get", "certainly-not-a-token") == [None, "token-invalid"]
    with pytest.raises(Exception) as exc:
        server.api("no_such_function_here")
    assert "no_such_function_here" in str(exc.value)
    # Calling a missing global logs a warning with a traceback; that one is ours.
    server.allow_log(r"no_such_function_here|stack traceback")


def test_stream_features_advertise_invite_registration(server):
    features = rawxmpp.stream_features(server, HOST)
    found = set(rawxmpp.children(features))
    assert ("register", "urn:xmpp:invite") in found, rawxmpp.to_xml(features)
    assert ("register", "urn:xmpp:ibr-token:0") in found, rawxmpp.to_xml(features)


def test_bad_token_preauth_gets_an_iq_error(server):
    with rawxmpp.open_stream(server, HOST) as raw:
        reply = raw.preauth("this-token-does-not-exist")
        assert reply.get("type") == "error", rawxmpp.to_xml(reply)
        err = rawxmpp.stanza_error(reply)
        assert err and err["type"] == "cancel" and err["text"] == INVALID_TOKEN_TEXT, err


def test_registration_without_invite_is_refused(server):
    result = client.register(server, "mallory", "pw")
    assert result.preauth is None
    assert not result.registration, result
    assert result.registration.condition == "not-acceptable", result.registration
    assert result.registration.text == INVITE_ONLY_TEXT, result.registration
    assert not client.can_login(server, "mallory@localhost", "pw")


def test_sql_storage_generate_and_register(make_server):
    srv = make_server(storage="sql")
    token = token_of(srv.generate_invite(HOST))
    assert srv.api1("store_get", None, token)["token"] == token
    result = client.register(srv, "sqluser", "pw", token)
    assert result.registration and result.logged_in, result
    assert srv.sqlite_path.is_file()
    assert srv.api1("store_get", None, token) is None


def test_restart_keeps_invites(make_server, impl):
    srv = make_server()
    token = srv.api1("create_account")["token"]
    srv.restart(impl=impl)
    assert srv.api("get_account_invite_info", token)[0]["token"] == token
    assert client.register(srv, "later", "pw", token).ok


def test_contact_invite_registration_makes_mutual_subscription(server):
    server.create_user("inviter", "pw")
    with OnlineClient(server, "inviter@localhost", "pw") as inviter:
        mark = inviter.mark()
        invite = server.api1("create_contact", "inviter", True)
        assert invite["uri"].endswith(";ibr=y"), invite
        result = client.register(server, "newbie", "pw", invite["token"])
        assert result.ok and result.logged_in, result
        push = inviter.wait_for_roster_push("newbie@localhost", subscription="both", since=mark)
        assert push is not None, inviter.roster_pushes(mark)
    assert client.roster(server, "newbie@localhost", "pw")["inviter@localhost"]["subscription"] == "both"


def test_subscribe_with_preauth_using_a_registration_contact_token(server):
    server.create_user("owner", "pw")
    server.create_user("friend", "pw")
    invite = server.api1("create_contact", "owner", True)
    # The inviter is online here: with an offline inviter and an online
    # contact, stock 0.12.3 never sends `subscribed` back (mod_presence asks
    # the contact's own online roster first), which is a behaviour test, not
    # a harness check.
    with OnlineClient(server, "owner@localhost", "pw") as owner:
        mark = owner.mark()
        res = client.subscribe_with_preauth(server, "friend@localhost", "pw", "owner@localhost", invite["token"])
        assert res.got_subscribed, res.received
        assert res.got_subscribe and res.approved, res.received
        assert res.roster["owner@localhost"]["subscription"] == "both", res.roster
        assert owner.wait_for_roster_push("friend@localhost", subscription="both", since=mark), \
            owner.roster_pushes(mark)


def test_adhoc_contact_invite_for_a_local_user(server):
    server.create_user("adhocuser", "pw")
    res = client.adhoc(server, "adhocuser@localhost", "pw", "urn:xmpp:invite#invite")
    assert res.listed, res.commands
    assert res.status == "completed", res.xml
    uri = res.form.value("uri")
    assert uri and uri.startswith("xmpp:adhocuser@localhost?roster;preauth="), res.xml
