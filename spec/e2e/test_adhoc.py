"""mod_invites_adhoc end to end (XEP-0401 0.6.0 over XEP-0050): who sees and may run which
command, when a contact invite promises `ibr=y`, the two-step create-account command, the result
form, and failures as command errors. The invites made here are then used the way invitees use
them: in-band registration (XEP-0445) and pre-authenticated subscription (XEP-0379).

Against stock (INVITES_IMPL=stock) the deliberate fixes are expected to fail and the extensions
(role-granted account invites, the password-reset command) are skipped.
"""

from __future__ import annotations

import datetime
import itertools
import re

import pytest

import adhoc_client
import client
from online_client import OnlineClient
from prosody import TRACEBACK_PATTERNS, ProsodyServer
from prosody_host import is_stock

CONTACT = "urn:xmpp:invite#invite"
ACCOUNT = "urn:xmpp:invite#create-account"
RESET = "urn:xmpp:invite#create-reset"
INVITATION = "urn:xmpp:invite#invitation"
PROSODY_RESET = "xmpp:prosody.im/mod_invites_adhoc#password-reset"  # stock 13's reset node
PW = "pw"
TOKEN = r"([A-Za-z0-9_-]{16,})"
XEP0082 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

HOST = "localhost"
OPEN = "open.localhost"  # allow_user_invites = true, one role denied
NOREG = "noreg.localhost"  # allow_user_invites = true, no mod_invites_register
CLOSED = "closed.localhost"  # allow_user_invites = true, no registration at all
INVITE_ONLY = "inviteonly.localhost"  # allow_user_invites = true, allow_registration = false, invite-only
ADMINS_ONLY = "adminsonly.localhost"  # allow_contact_invites = false
OTHER = "other.localhost"  # its users are remote to the others
PAGES = "pages.localhost"  # mod_invites_page gives invites a landing page

HOSTS = {
    HOST: {
        "admins": ["admin@localhost"],
        "invites_account_roles": ["invites:creator"],
        "allow_user_invites_by_roles": ["invites:trusted"],
        "modules_enabled": ["test_adhoc_roles"],
        "test_roles": {"carol": ["invites:creator"], "dave": ["invites:trusted"]},
    },
    OPEN: {
        "allow_user_invites": True,
        "deny_user_invites_by_roles": ["invites:untrusted"],
        "modules_enabled": ["test_adhoc_roles"],
        "test_roles": {"gina": ["invites:untrusted"]},
    },
    NOREG: {"allow_user_invites": True, "modules_disabled": ["invites_register"]},
    CLOSED: {"allow_user_invites": True, "allow_registration": False, "registration_invite_only": False},
    INVITE_ONLY: {"allow_user_invites": True, "allow_registration": False},
    ADMINS_ONLY: {"allow_contact_invites": False, "admins": ["boss@adminsonly.localhost"]},
    OTHER: {},
    PAGES: {
        "admins": ["admin@pages.localhost"],
        "modules_enabled": ["invites_page"],
        "invites_page_external": True,
        "invites_page": "https://invite.example/{invite.token}",
    },
}

USERS = {
    HOST: ["alice", "admin", "carol", "dave", "bob", "rita"],
    OPEN: ["frank", "gina"],
    NOREG: ["henry"],
    CLOSED: ["ivan"],
    INVITE_ONLY: ["jack"],
    ADMINS_ONLY: ["boss", "pat"],
    OTHER: ["eve"],
    PAGES: ["admin", "lena"],
}

_names = itertools.count(1)


def fresh(prefix="new") -> str:
    return f"{prefix}{next(_names)}"


@pytest.fixture(scope="module")
def main_server(e2e_base_dir):
    server = ProsodyServer(e2e_base_dir / "adhoc", hosts=HOSTS)
    server.start()
    for host, users in USERS.items():
        for user in users:
            server.create_user(user, PW, host=host)
    yield server
    server.stop()


@pytest.fixture
def srv(main_server):
    """The shared server; each test answers for the log lines written during it."""
    mark = main_server.log_mark()
    yield main_server
    bad = re.compile("|".join(TRACEBACK_PATTERNS))
    found = [line for line in main_server.log_text()[mark:].splitlines() if bad.search(line)]
    assert not found, "server log has error/traceback lines:\n" + "\n".join(found[:20])


def run(server, jid, node, form=None, to=None):
    """client.adhoc(): discover, execute, and submit `form` if the command asks for one."""
    return client.adhoc(server, jid, PW, node, form, to=to)


def result_fields(result) -> dict:
    assert result.error is None, result.xml
    assert result.status == "completed", result.xml
    assert result.form is not None, result.xml
    return {var: f.value for var, f in result.form.fields.items()}


def assert_invitation(result, uri_pattern: str) -> str:
    """The XEP-0401 0.6.0 result form; returns the token."""
    form = result.form
    fields = result_fields(result)
    assert form.type == "result", result.xml
    assert form.fields["FORM_TYPE"].type == "hidden", result.xml
    assert fields["FORM_TYPE"] == INVITATION, result.xml
    assert XEP0082.match(fields["expire"] or ""), result.xml
    assert "landing-url" not in fields or fields["landing-url"], "an empty landing-url field: " + result.xml
    m = re.fullmatch(uri_pattern, fields["uri"] or "")
    assert m, f"{fields['uri']!r} does not match {uri_pattern!r}"
    return m.group(1)


def invite_token(result, uri_pattern: str) -> str:
    """The token of a completed command's `uri` field, whatever the form looks like otherwise."""
    uri = result_fields(result).get("uri") or ""
    m = re.fullmatch(uri_pattern, uri)
    assert m, f"{uri!r} does not match {uri_pattern!r}"
    return m.group(1)


def assert_command_error(result, condition: str):
    assert result.error is not None, f"expected a {condition} error, got {result.xml}"
    assert result.error.condition == condition, result.xml
    assert result.error.text, "command errors carry a reason: " + result.xml


# ------------------------------------------------------------------------- discovery


@pytest.mark.parametrize(
    "jid, to, expected",
    [
        ("alice@localhost", HOST, {CONTACT}),
        ("admin@localhost", HOST, {CONTACT, ACCOUNT, RESET}),
        ("carol@localhost", HOST, {CONTACT, ACCOUNT}),  # invites_account_roles
        ("dave@localhost", HOST, {CONTACT}),  # may invite new users, not make account invites
        ("eve@other.localhost", HOST, set()),  # remote user
        ("pat@adminsonly.localhost", ADMINS_ONLY, set()),  # allow_contact_invites = false
        ("boss@adminsonly.localhost", ADMINS_ONLY, {CONTACT, ACCOUNT, RESET}),
    ],
)
def test_command_discovery(srv, impl, jid, to, expected):
    if is_stock(impl):
        if jid.startswith("carol@"):
            pytest.skip("extension: stock has no invites_account_roles")
        expected = expected - {RESET}  # extension
    items = client.disco_items(srv, jid, PW, to, "http://jabber.org/protocol/commands")
    invite_nodes = [i["node"] for i in items if i.get("node", "").startswith("urn:xmpp:invite#")]
    assert sorted(invite_nodes) == sorted(expected)  # each listed once


def test_command_node_info(srv, impl):
    info = adhoc_client.disco_info(srv, "admin@localhost", PW, CONTACT)
    assert info.outcome.ok and ("automation", "command-node", "Create new contact invite") in info.identities
    denied = adhoc_client.disco_info(srv, "alice@localhost", PW, ACCOUNT)
    assert not denied.outcome.ok and denied.outcome.condition == "forbidden"
    if is_stock(impl):
        pytest.skip("extension: stock has no invites_account_roles")
    granted = adhoc_client.disco_info(srv, "carol@localhost", PW, ACCOUNT)
    assert granted.outcome.ok, granted.outcome.xml
    assert ("automation", "command-node", "Create new account invite") in granted.identities
    assert "http://jabber.org/protocol/commands" in granted.features


# ---------------------------------------------------------------------- contact invites


@pytest.mark.deliberate_fix(8)
def test_contact_invite_result_form(srv):
    result = run(srv, "alice@localhost", CONTACT)
    assert result.listed
    token = assert_invitation(result, rf"xmpp:alice@localhost\?roster;preauth={TOKEN}")
    assert "landing-url" not in result.form.fields  # no landing page configured
    # The inviter's entry holds the expiry as a bare number; the form shows it as XEP-0082.
    expires = srv.api1("store_get", "alice", token)
    expire = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result.form.value("expire") == expire


@pytest.mark.deliberate_fix(8)
def test_landing_page_in_result(srv):
    result = run(srv, "admin@pages.localhost", ACCOUNT, {"username": ""})
    token = assert_invitation(result, rf"xmpp:pages\.localhost\?register;preauth={TOKEN}")
    assert result.form.value("landing-url") == f"https://invite.example/{token}"
    # mod_invites_page has no page for contact-only invites: then there is no landing-url field.
    result = run(srv, "lena@pages.localhost", CONTACT)
    assert_invitation(result, rf"xmpp:lena@pages\.localhost\?roster;preauth={TOKEN}")
    assert "landing-url" not in result.form.fields


def test_remote_user_gets_a_command_error(srv):
    before = srv.api1("store_all", None) or {}
    result = run(srv, "eve@other.localhost", CONTACT, to=HOST)
    assert not result.listed
    assert_command_error(result, "forbidden")
    assert (srv.api1("store_all", None) or {}) == before


def test_contact_invites_for_admins_only(srv):
    result = run(srv, "pat@adminsonly.localhost", CONTACT)
    assert_command_error(result, "forbidden")
    result = run(srv, "boss@adminsonly.localhost", CONTACT)
    invite_token(result, rf"xmpp:boss@adminsonly\.localhost\?roster;preauth={TOKEN}(?:;ibr=y)?")


IBR_CASES = [
    # (requester, expected ibr=y, why)
    pytest.param("alice@localhost", False, id="default-user"),
    pytest.param("admin@localhost", True, id="admin"),
    pytest.param("dave@localhost", True, id="allow_user_invites_by_roles"),
    pytest.param("frank@open.localhost", True, id="allow_user_invites"),
    pytest.param("gina@open.localhost", False, id="deny_user_invites_by_roles"),
    pytest.param("jack@inviteonly.localhost", True, id="allow_registration-false-invite-only"),
    pytest.param("ivan@closed.localhost", False, id="no-registration", marks=pytest.mark.deliberate_fix(7)),
    pytest.param("henry@noreg.localhost", False, id="no-invites_register", marks=pytest.mark.deliberate_fix(7)),
]


@pytest.mark.parametrize("jid, ibr", IBR_CASES)
def test_ibr_is_a_promise(srv, jid, ibr):
    """`;ibr=y` exactly when the token registers an account on the inviter's host."""
    user, host = jid.split("@")
    result = run(srv, jid, CONTACT)
    token = invite_token(result, rf"xmpp:{re.escape(jid)}\?roster;preauth={TOKEN}(?:;ibr=y)?")
    uri = result.form.value("uri")
    assert uri.endswith(";ibr=y") == ibr, uri
    newcomer = fresh()
    registered = client.register(srv, newcomer, PW, token, host=host, login=False)
    assert registered.ok == ibr, f"ibr={ibr} but registration {registered.registration}"
    if ibr:
        # Registering through a contact invite befriends the inviter.
        roster = client.roster(srv, jid, PW)
        assert roster.get(f"{newcomer}@{host}", {}).get("subscription") == "both", roster


@pytest.mark.deliberate_fix(1)
def test_contact_invite_works_for_xep0379(srv):
    token = invite_token(run(srv, "alice@localhost", CONTACT), rf"xmpp:alice@localhost\?roster;preauth={TOKEN}")
    sub = client.subscribe_with_preauth(srv, "bob@localhost", PW, "alice@localhost", token)
    assert sub.got_subscribed and sub.got_subscribe, sub.received
    assert sub.roster.get("alice@localhost", {}).get("subscription") == "both", sub.roster
    assert srv.api("get", token, "alice")[1] == "token-invalid"  # used up


# ---------------------------------------------------------------------- account invites


@pytest.mark.deliberate_fix(8)
def test_create_account_asks_first(srv):
    result = run(srv, "admin@localhost", ACCOUNT)
    assert result.error is None and result.status == "executing", result.xml
    assert result.actions == ["complete"], result.xml
    form = result.form
    assert form.type == "form"
    assert form.fields["username"].type == "text-single"
    assert form.fields["roster-subscription"].type == "boolean"
    assert "urn:xmpp:invite#create-account" in result.xml and 'execute="complete"' in result.xml


@pytest.mark.deliberate_fix(2)
def test_create_account_for_a_username(srv):
    name = fresh("named")
    result = run(srv, "admin@localhost", ACCOUNT, {"username": name, "roster-subscription": False})
    token = assert_invitation(result, rf"xmpp:{name}@localhost\?register;preauth={TOKEN}")
    record = srv.api1("store_get", None, token)
    assert record["jid"] == f"{name}@localhost" and record["additional_data"]["source"].startswith("admin@localhost")
    # The name is reserved: neither another invite nor another person can take it.
    again = run(srv, "admin@localhost", ACCOUNT, {"username": name})
    assert_command_error(again, "conflict")
    # The invite registers that name only.
    other = client.register(srv, fresh("mallory"), PW, token, login=False)
    assert not other.ok, other.registration
    mine = client.register(srv, name, PW, token)
    assert mine.ok and mine.logged_in, mine.registration
    assert srv.api("get", token)[1] == "token-invalid"


@pytest.mark.deliberate_fix(8)
def test_create_account_for_any_username(srv):
    result = run(srv, "admin@localhost", ACCOUNT, {"username": "", "roster-subscription": False})
    token = assert_invitation(result, rf"xmpp:localhost\?register;preauth={TOKEN}")
    assert client.register(srv, fresh("anyone"), PW, token, login=False).ok


@pytest.mark.deliberate_fix(8)
@pytest.mark.parametrize("first_action", ["complete", "execute-then-complete"])
def test_create_account_completed_without_a_form(srv, first_action):
    stages = [("complete", None)] if first_action == "complete" else [("execute", None), ("complete", None)]
    results = adhoc_client.steps(srv, "admin@localhost", PW, ACCOUNT, stages)
    if len(results) == 2:
        assert results[0].status == "executing", results[0].xml
        assert results[1].sessionid == results[0].sessionid
    token = assert_invitation(results[-1], rf"xmpp:localhost\?register;preauth={TOKEN}")
    record = srv.api1("store_get", None, token)
    assert record["type"] == "register" and record["jid"] == HOST


def test_create_account_can_be_canceled(srv, impl):
    if is_stock(impl):
        pytest.skip("stock completes at once, there is nothing to cancel")
    before = srv.api1("store_all", None) or {}
    results = adhoc_client.steps(srv, "admin@localhost", PW, ACCOUNT, [("execute", None), ("cancel", None)])
    assert results[1].status == "canceled", results[1].xml
    assert (srv.api1("store_all", None) or {}) == before


@pytest.mark.deliberate_fix(8)
@pytest.mark.parametrize(
    "username, condition",
    [("a@b", "bad-request"), ("alice", "conflict"), ("x" * 1100, "bad-request")],
    ids=["not-a-localpart", "existing-account", "too-long"],
)
def test_create_account_refuses_names(srv, username, condition):
    before = srv.api1("store_all", None) or {}
    result = run(srv, "admin@localhost", ACCOUNT, {"username": username})
    assert_command_error(result, condition)
    assert (srv.api1("store_all", None) or {}) == before, "nothing stored"


def test_create_account_with_roster_subscription(srv, impl):
    if is_stock(impl):
        pytest.skip("stock has no create-account form")
    name = fresh("friend")
    with OnlineClient(srv, "admin@localhost", PW) as admin:
        result = admin.adhoc(ACCOUNT, {"username": name, "roster-subscription": True})
        token = assert_invitation(result, rf"xmpp:{name}@localhost\?register;preauth={TOKEN}")
        mark = admin.mark()
        assert client.register(srv, name, PW, token, login=False).ok
        # XEP-0401: the server roster-pushes the new contact to the creator.
        assert admin.wait_for_roster_push(f"{name}@localhost", since=mark, subscription="both"), admin.roster_pushes(mark)
    assert client.roster(srv, f"{name}@localhost", PW).get("admin@localhost", {}).get("subscription") == "both"


def test_role_granted_user_creates_account_invites(srv, impl):
    if is_stock(impl):
        pytest.skip("extension: stock has no invites_account_roles")
    result = run(srv, "carol@localhost", ACCOUNT, {"username": ""})
    assert result.listed
    token = assert_invitation(result, rf"xmpp:localhost\?register;preauth={TOKEN}")
    assert client.register(srv, fresh("viacarol"), PW, token, login=False).ok


def test_plain_user_may_not_create_account_invites(srv):
    before = srv.api1("store_all", None) or {}
    for jid in ("alice@localhost", "dave@localhost", "eve@other.localhost"):
        result = adhoc_client.execute(srv, jid, PW, ACCOUNT, "complete", to=HOST)
        assert_command_error(result, "forbidden")
    assert (srv.api1("store_all", None) or {}) == before


# ---------------------------------------------------------------------- password reset


def test_password_reset_invite(srv, impl):
    if is_stock(impl):
        pytest.skip("extension: no password-reset command in 0.12")
    result = run(srv, "admin@localhost", RESET, {"accountjid": "rita@localhost"})
    token = assert_invitation(result, rf"xmpp:rita@localhost\?register;preauth={TOKEN}")
    assert client.register(srv, "rita", "newpw", token, login=False).ok
    assert client.can_login(srv, "rita@localhost", "newpw")
    for jid, condition in [("nobody@localhost", "item-not-found"), ("eve@other.localhost", "item-not-found"),
                           ("localhost", "bad-request")]:
        assert_command_error(run(srv, "admin@localhost", RESET, {"accountjid": jid}), condition)
    assert_command_error(run(srv, "alice@localhost", RESET), "forbidden")


def test_password_reset_at_prosody_13s_node(srv):
    """Stock 13's node for the reset command answers too, for admins only."""
    result = run(srv, "admin@localhost", PROSODY_RESET, {"accountjid": "bob@localhost"})
    token = invite_token(result, rf"xmpp:bob@localhost\?register;preauth={TOKEN}")
    assert srv.api1("store_get", None, token)["additional_data"]["allow_reset"] == "bob"
    refused = run(srv, "alice@localhost", PROSODY_RESET, {"accountjid": "bob@localhost"})
    assert refused.error is not None and refused.status != "completed", refused.xml


# ---------------------------------------------------------------------- storage failures


@pytest.mark.deliberate_fix(8)
def test_storage_failure_is_a_command_error(make_server):
    # The stock layout: "user" writes failing is that layout's half-way (the per-invite layout's
    # own failures: test_storage_faults.py).
    srv = make_server(hosts={
        HOST: {"admins": ["admin@localhost"], "storage": {"invite_token": "test_faulty"},
               "invites_storage_layout": "stock"},
        "half.localhost": {"admins": ["admin@half.localhost"], "storage": {"invite_token": "test_faulty"},
                           "test_faulty_writes": "user", "invites_storage_layout": "stock"},
    })
    for host in (HOST, "half.localhost"):
        for user in ("alice", "admin"):
            srv.create_user(user, PW, host=host)
    # Every write fails: contact and account invites alike.
    for jid, node, form in [("alice@localhost", CONTACT, None), ("admin@localhost", ACCOUNT, {"username": ""})]:
        result = run(srv, jid, node, form)
        assert_command_error(result, "internal-server-error")
        assert result.error.error_type == "wait", result.xml
    # Host-level write succeeds, the inviter's entry fails: nothing half-made stays behind.
    result = run(srv, "admin@half.localhost", CONTACT)
    assert_command_error(result, "internal-server-error")
    assert not srv.api1("store_all", None, host="half.localhost")
