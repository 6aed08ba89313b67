"""mod_invites end to end: prosodyctl generate, the admin shell, the API, SQL storage,
housekeeping. Runs against ours by default and against stock with INVITES_IMPL=stock, where the
tests of deliberate fixes (and of our documented extensions) are expected to fail.
"""

from __future__ import annotations

import re
import time

import pytest

import client
from prosody import ProsodyServer
from prosody_ctl import last_line
from prosody_host import prosody_version

HOST = "localhost"
SHORT = "short.localhost"  # a host with its own invite_expiry
TOKEN = r"([A-Za-z0-9_-]{16,})"


def stored_roles(roles: list):
    """additional_data.roles as the running release's stock modules read it: a set on 0.12, a
    list (first = primary role) on 13."""
    if prosody_version() >= (13,):
        return roles
    return {role: True for role in roles} if roles else None


def token_of(uri: str, pattern: str = rf"^xmpp:[^?]+\?(?:register|roster);preauth={TOKEN}") -> str:
    m = re.match(pattern, uri)
    assert m, f"not an invite URI: {uri!r}"
    return m.group(1)


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    server = ProsodyServer(
        e2e_base_dir / "mod_invites",
        hosts={HOST: {}, SHORT: {"invite_expiry": 3600}},
        options={"invites_purge_delay": 1, "invites_purge_interval": 1},
    )
    server.start()
    yield server
    server.stop()
    server.assert_no_tracebacks()


def host_tokens(server, host=HOST) -> set:
    return set((server.api1("store_all", None, host=host) or {}).keys())


# ------------------------------------------------------------------ prosodyctl generate


def test_generate_account_invite_is_stored_like_stock(srv):
    res = srv.prosodyctl("mod_invites", "generate", HOST)
    assert res.returncode == 0, res
    uri = last_line(res.stdout)
    token = token_of(uri, rf"^xmpp:localhost\?register;preauth={TOKEN}$")
    record = srv.api1("store_get", None, token)
    assert record["type"] == "register" and record["jid"] == HOST and record["token"] == token
    assert record["uri"] == uri and record["allow_registration"] is True
    assert record["expires"] - record["created_at"] == 604800
    # As that release's stock command stores it: 0.12.3 no roles key and empty groups, 13's shell
    # empty roles and groups (empty Lua tables come back as {}).
    expected = {"groups": {}} if prosody_version() < (13,) else {"roles": {}, "groups": {}}
    assert record["additional_data"] == expected


@pytest.mark.parametrize(
    "flags, roles, groups",
    [
        (["--admin"], ["prosody:admin"], {}),
        (["--role", "prosody:member"], ["prosody:member"], {}),
        (["--group", "team", "-g", "ops"], [], ["team", "ops"]),
    ],
)
def test_generate_roles_and_groups(srv, flags, roles, groups):
    uri = srv.generate_invite(HOST, *flags)
    data = srv.api1("store_get", None, token_of(uri))["additional_data"]
    assert data.get("roles") == (stored_roles(roles) or (None if prosody_version() < (13,) else {}))
    assert data.get("groups") == groups


def test_generate_accumulates_repeated_roles(srv, impl):
    if impl == "stock":
        pytest.skip("extension: stock keeps only the last role")
    uri = srv.generate_invite(HOST, "--admin", "--role", "prosody:member")
    data = srv.api1("store_get", None, token_of(uri))["additional_data"]
    assert data["roles"] == stored_roles(["prosody:admin", "prosody:member"])


def test_generate_reset_invite(srv):
    srv.api("create_user", "rosa", "old-password")
    uri = srv.generate_invite(HOST, "--reset", "rosa")
    assert uri.startswith("xmpp:rosa@localhost?register;preauth=")
    record = srv.api1("store_get", None, token_of(uri))
    assert record["jid"] == "rosa@localhost"
    assert record["additional_data"]["allow_reset"] == "rosa"
    assert record["expires"] - record["created_at"] == 86400


def test_generate_honours_the_hosts_own_invite_expiry(srv):
    uri = srv.generate_invite(SHORT)
    record = srv.api1("store_get", None, token_of(uri), host=SHORT)
    assert record["expires"] - record["created_at"] == 3600


def test_generate_expires_after(srv):
    uri = srv.generate_invite(HOST, "--expires-after", "2h")
    record = srv.api1("store_get", None, token_of(uri))
    assert record["expires"] - record["created_at"] == 7200


@pytest.mark.deliberate_fix(10)
@pytest.mark.parametrize(
    "args, mentions",
    [
        ([HOST, "--frob"], "--frob"),
        ([HOST, "--role"], "--role"),
        ([HOST, "--reset"], "--reset"),
        ([HOST, "--reset", "rosa", "--group", "g1"], "--group"),
        ([HOST, "--reset", "rosa", "--admin"], "--admin"),
        ([HOST, "--reset", "not valid@name"], "not valid@name"),
        ([HOST, "--expires-after", "soon"], "soon"),
        (["nosuch.example"], "nosuch.example"),
        ([], "HOST"),
    ],
)
def test_generate_argument_errors_create_nothing(srv, args, mentions):
    before = host_tokens(srv)
    res = srv.prosodyctl("mod_invites", "generate", *args)
    output = res.stdout + res.stderr
    assert res.returncode == 2, output
    assert mentions in res.stderr, output
    assert "traceback" not in output.lower()
    assert not re.search(r"xmpp:[^ ]*preauth=", output), output
    assert host_tokens(srv) == before


def test_generate_help(srv, impl):
    res = srv.prosodyctl("mod_invites", "generate", "--help")
    assert "--reset" in res.stdout
    if impl == "ours":
        assert res.returncode == 0 and "--expires-after" in res.stdout


# ------------------------------------------------------------------ admin shell


def test_shell_create_account_invite_registers(srv):
    result = srv.shell('invite:create_account("localhost")')
    assert result.ok, result
    token = token_of(result.text.strip(), rf"^xmpp:localhost\?register;preauth={TOKEN}$")
    reg = client.register(srv, "shelly", "pw-shelly", token)
    assert reg.ok, reg
    assert srv.api1("store_get", None, token) is None


def test_shell_create_account_for_a_name(srv):
    result = srv.shell('invite:create_account("bob@localhost")')
    assert result.ok, result
    assert result.text.strip().startswith("xmpp:bob@localhost?register;preauth=")


@pytest.mark.parametrize("argument, ibr", [('"false"', False), ('"no"', False), ("false", False), ("true", True), ('"yes"', True)])
def test_shell_create_contact_reads_booleans(srv, argument, ibr):
    result = srv.shell(f'invite:create_contact("alice@localhost", {argument})')
    assert result.ok, result
    uri = result.text.strip()
    assert uri.startswith("xmpp:alice@localhost?roster;preauth=")
    assert uri.endswith(";ibr=y") == ibr, uri


def test_shell_unknown_host_is_an_error(srv):
    result = srv.shell('invite:create_account("nosuch.invalid")')
    assert not result.ok
    # 13's shell answers for hosts it does not know before any module is asked.
    expected = "mod_invites not loaded on this host" if prosody_version() < (13,) else "Unknown host: nosuch.invalid"
    assert expected in result.text


# ------------------------------------------------------------------ the API


def test_api_get_returns_stock_fields_and_more(srv, impl):
    record = srv.api1("create_account", "dora")
    invite = srv.api1("get", record["token"])
    assert invite["token"] == record["token"] and invite["type"] == "register"
    assert invite["uri"] == record["uri"]
    if impl == "ours":  # README "API for other modules": fields stock leaves out although consumers read them
        assert invite["jid"] == "dora@localhost"
        assert invite["expires"] == record["expires"]
        assert invite["username"] == "dora"


@pytest.mark.parametrize("junk", ["", "t=abc&c=conversations", "x" * 10000, "jöns", "<x/>", "a b"])
def test_api_get_rejects_junk(srv, junk):
    assert srv.api("get", junk) == [None, "token-invalid"]
    assert srv.api("get", junk, "alice") == [None, "token-invalid"]


def test_api_get_without_token(srv):
    assert srv.api("get", None) == [None, "no-token"]


def test_api_expired_invite(srv):
    record = srv.api1("create_account", None, None, 1)
    time.sleep(2.1)
    assert srv.api("get", record["token"]) == [None, "token-expired"]
    assert srv.api("get_account_invite_info", record["token"]) == [None, "token-expired"]


@pytest.mark.deliberate_fix(1, stock_fixed_in="13")
def test_api_contact_only_token_validates_for_its_inviter(srv):
    srv.api("create_user", "carl", "pw")  # contact invites are valid while their inviter exists
    record = srv.api1("create_contact", "carl", False)
    invite = srv.api1("get", record["token"], "carl")
    assert invite["type"] == "roster" and invite["username"] == "carl"
    assert srv.api("get", record["token"], "someoneelse") == [None, "token-invalid"]
    assert srv.api1("get_and_use", record["token"], "carl")
    assert srv.api1("store_get", "carl", record["token"]) is None


@pytest.mark.deliberate_fix(5)
def test_api_delete_revokes_both_halves(srv):
    record = srv.api1("create_contact", "dave", True)
    token = record["token"]
    assert srv.api1("store_get", "dave", token) == record["expires"]
    assert srv.api1("delete_account_invite", token) is True
    assert srv.api1("store_get", None, token) is None
    assert srv.api1("store_get", "dave", token) is None
    assert srv.api("get", token, "dave") == [None, "token-invalid"]


def test_api_bad_arguments_are_errors_not_crashes(srv, impl):
    if impl == "stock":
        pytest.skip("stock raises on create_contact(nil)")
    assert srv.api("create_contact", None) == [None, "invalid-username"]
    assert srv.api("create_account", "a@b") == [None, "invalid-username"]


def test_api_reusable_group_invite(srv):
    record = srv.api1("create_group", ["g1"], {"source": "test"}, 3600)
    assert record["reusable"] is True
    assert record["additional_data"] == {"groups": ["g1"], "source": "test"}
    assert srv.api1("get_and_use", record["token"])
    assert srv.api1("get", record["token"])["token"] == record["token"]
    pending = dict(srv.api1("pending_account_invites"))
    assert record["token"] in pending


# ------------------------------------------------------------------ housekeeping


@pytest.mark.deliberate_fix(6)
def test_expired_invites_are_purged_on_a_timer(srv):
    now = srv.api1("now")
    old = {"type": "roster", "jid": "erin@localhost", "token": "oldtokenAAAAAAAAAAAAAAAA", "allow_registration": True,
           "uri": "xmpp:erin@localhost?roster;preauth=oldtokenAAAAAAAAAAAAAAAA;ibr=y",
           "created_at": now - 100000, "expires": now - 90000}
    srv.api("store_set", None, old["token"], old)
    srv.api("store_set", "erin", old["token"], old["expires"])
    fresh = srv.api1("create_account")
    deadline = time.time() + 6
    # Both halves: a purge may run between the two writes above and take the host half only.
    while time.time() < deadline and (srv.api1("store_get", None, old["token"]) is not None
                                      or srv.api1("store_get", "erin", old["token"]) is not None):
        time.sleep(0.2)
    assert srv.api1("store_get", None, old["token"]) is None
    assert srv.api1("store_get", "erin", old["token"]) is None
    assert srv.api1("store_get", None, fresh["token"]) is not None


@pytest.mark.deliberate_fix(6)
def test_deleting_a_user_removes_their_invites(srv):
    srv.api("create_user", "frank", "pw")
    contact = srv.api1("create_contact", "frank", True)
    reset = srv.api1("create_account_reset", "frank")
    other = srv.api1("create_account", "gina")
    srv.api("delete_user", "frank")
    assert srv.api1("store_get", None, contact["token"]) is None
    assert srv.api1("store_get", "frank", contact["token"]) is None
    assert srv.api1("store_get", None, reset["token"]) is None
    assert srv.api1("store_get", None, other["token"]) is not None


# ------------------------------------------------------------------ SQL storage


def test_sqlite_storage(make_server):
    server = make_server(storage="sql")
    uri = server.generate_invite(HOST)
    token = token_of(uri)
    assert server.api1("get_account_invite_info", token)["token"] == token
    contact = server.api1("create_contact", "hugo", True)
    assert server.api1("store_get", "hugo", contact["token"]) == contact["expires"]
    assert server.api1("store_get", None, contact["token"])["jid"] == "hugo@localhost"
    reg = client.register(server, "ivy", "pw-ivy", token)
    assert reg.ok, reg
    assert server.api1("store_get", None, token) is None
    assert client.can_login(server, "ivy@localhost", "pw-ivy")


@pytest.mark.deliberate_fix(5)
def test_sqlite_delete_revokes_both_halves(make_server):
    server = make_server(storage="sql")
    contact = server.api1("create_contact", "hugo", True)
    assert server.api1("delete_account_invite", contact["token"]) is True
    assert server.api1("store_get", None, contact["token"]) is None
    assert server.api1("store_get", "hugo", contact["token"]) is None


# ------------------------------------------------------------------ Prosody 13's options, on both releases


def test_invites_page_template_sets_landing_pages(make_server):
    """13's `invites_page` / `invites_page_supports`: a landing page URL without mod_invites_page,
    for the kinds of invite the page supports (by default not contact-only ones)."""
    srv = make_server(hosts={
        HOST: {"invites_page": "https://invite.example/{host}/{invite.token}?x={invite.jid}"},
        SHORT: {"invites_page": "https://invite.example/{invite.token}", "invites_page_supports": ["contact-only"]},
    })
    srv.api("create_user", "alice", "pw")
    srv.api("create_user", "alice", "pw", host=SHORT)
    account = srv.api1("create_account", "zoe")
    assert account["landing_page"] == f"https://invite.example/{HOST}/{account['token']}?x=zoe%40{HOST}"
    assert srv.api1("store_get", None, account["token"])["landing_page"] == account["landing_page"]
    assert srv.api1("create_contact", "alice", True)["landing_page"].startswith("https://invite.example/")
    assert "landing_page" not in srv.api1("create_contact", "alice", False)

    contact = srv.api1("create_contact", "alice", False, host=SHORT)
    assert contact["landing_page"] == f"https://invite.example/{contact['token']}"
    assert "landing_page" not in srv.api1("create_account", host=SHORT)


@pytest.mark.parametrize(
    "option, seconds",
    [("1 month", 31 * 86400), ("1 year", 31556952), ("12h", 43200), (86400 * 2, 172800), ("3 dogs", 3)],
)
def test_invite_expiry_reads_periods_as_prosody_13(make_server, option, seconds):
    """invite_expiry as 13's get_option_period reads it (a month is 31 days, a year 365.2425),
    on 0.12 as well; text it finds ambiguous is used as 13 uses it, and logged as 13 logs it."""
    srv = make_server(hosts={HOST: {"invite_expiry": option}})
    record = srv.api1("create_account")
    assert record["expires"] - record["created_at"] == seconds
    if option == "3 dogs":
        assert "ambiguous period '3 dogs'" in srv.log_text()
