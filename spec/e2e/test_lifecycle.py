"""The invite lifecycle (README "Invite lifecycle"): an audit record per invite (who made it, who
used it, how), every pending invite listed, any invite shown in whatever state it is in, revocation
one by one or of everything one account created, use limits, the same on the admin shell and on
prosodyctl with the server stopped. Extensions: stock has none of this.
"""

from __future__ import annotations

import itertools
import re

import pytest

import adhoc_client
import client
import rawxmpp
from prosody import ProsodyServer
from prosody_config import DEFAULT_MODULES

HOST = "localhost"
PW = "pw-lifecycle"
TOKEN = r"[A-Za-z0-9_-]{16,}"

_names = itertools.count(1)


def new_name(prefix="user") -> str:
    return f"{prefix}{next(_names)}"


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    server = ProsodyServer(e2e_base_dir / "lifecycle", hosts={HOST: {"admins": ["admin@localhost"]}})
    server.start()
    for user in ("alice", "admin", "spammer"):
        server.api("create_user", user, PW)
    yield server
    server.stop()
    server.assert_no_tracebacks()


def shell(srv, *words):
    res = srv.prosodyctl("shell", "invite", *words)
    return res.returncode == 0 and not res.stderr.strip(), res.stdout, res.stderr


def show(srv, token) -> dict:
    ok, out, err = shell(srv, "show", HOST, token)
    assert ok, (out, err)
    fields = {}
    for line in out.splitlines():
        m = re.match(r"^([A-Z][A-Za-z ]+):\s+(.*)$", line)
        if m:
            fields.setdefault(m.group(1), []).append(m.group(2).strip())
    return fields


def listed(srv, *flags) -> dict:
    """invite list: {token: [kind, creator, expires, uses left]}."""
    ok, out, err = shell(srv, "list", HOST, *flags)
    assert ok, (out, err)
    rows = {}
    for line in out.splitlines():
        if re.match(TOKEN + r" +\|", line):
            cells = [c.strip() for c in line.split("|")]
            rows[cells[0]] = cells[1:]
    count = re.search(r"OK: (\d+) pending invites", out)
    assert count and int(count.group(1)) == len(rows), out
    return rows


def token_in(text: str) -> str:
    m = re.search(rf"preauth=({TOKEN})", text)
    assert m, text
    return m.group(1)


def test_audit_names_the_creator_and_every_use(srv):
    invite = srv.api1("create_account", None, {"source": "admin@localhost/laptop"})
    name = new_name()
    assert client.register(srv, name, PW, invite["token"], login=False).ok
    fields = show(srv, invite["token"])
    assert fields["Creator"] == ["admin@localhost"]
    assert fields["State"] == ["used"]
    assert len(fields["Used by"]) == 1 and fields["Used by"][0].startswith(f"{name}@{HOST} (registered, ")


def test_contact_approval_and_password_reset_are_uses(srv):
    contact = srv.api1("create_contact", "alice", False)
    result = client.subscribe_with_preauth(srv, "spammer@localhost", PW, "alice@localhost", contact["token"])
    assert result.got_subscribed, result
    assert show(srv, contact["token"])["Used by"][0].startswith("spammer@localhost (contact-approved, ")

    reset = srv.api1("create_account_reset", "admin")
    assert client.register(srv, "admin", PW, reset["token"], login=False).registration
    assert show(srv, reset["token"])["Used by"][0].startswith(f"admin@{HOST} (password-reset, ")


def test_list_shows_every_kind_with_filters(srv):
    contact_only = srv.api1("create_contact", "alice", False)
    both = srv.api1("create_contact", "alice", True)
    account = srv.api1("create_account", None, {"source": "admin@localhost/x"})
    rows = listed(srv)
    assert rows[contact_only["token"]][:2] == ["contact", "alice@localhost"]
    assert rows[both["token"]][:2] == ["account-and-contact", "alice@localhost"]
    assert rows[account["token"]][:2] == ["account", "admin@localhost"]
    assert rows[account["token"]][3] == "1"

    assert set(listed(srv, "--kind", "contact")) >= {contact_only["token"]}
    assert all(r[0] == "contact" for r in listed(srv, "--kind", "contact").values())
    by_alice = listed(srv, "--creator", "alice@localhost")
    assert {contact_only["token"], both["token"]} <= set(by_alice) and account["token"] not in by_alice


def test_bad_filters_and_limits_are_refused(srv):
    ok, out, err = shell(srv, "list", HOST, "--kind", "bogus")
    assert not ok and "--kind: one of account" in err, (out, err)
    before = set(listed(srv))
    ok, out, err = shell(srv, "create_account", HOST, "--uses", "0")
    assert not ok and "--uses: expected a whole number from 1" in err, (out, err)
    assert set(listed(srv)) == before


def test_delete_revokes_both_halves_and_show_says_so(srv):
    contact_only = srv.api1("create_contact", "alice", False)
    ok, out, err = shell(srv, "delete", HOST, contact_only["token"])
    assert ok, (out, err)
    assert srv.api1("store_get", "alice", contact_only["token"]) is None
    fields = show(srv, contact_only["token"])
    assert fields["State"] == ["revoked"] and fields["Revoked"][0].endswith("by shell")


def test_revoke_everything_one_account_created(srv):
    made = [
        srv.api1("create_contact", "spammer", True, {"source": "spammer@localhost/phone"}),
        srv.api1("create_contact", "spammer", False),
        srv.api1("create_account", None, {"source": "spammer@localhost/phone"}),
    ]
    keep = srv.api1("create_contact", "alice", True)
    ok, out, err = shell(srv, "revoke_by", HOST, "spammer@localhost")
    assert ok and "Revoked 3 invitations created by spammer@localhost" in out, (out, err)
    for invite in made:
        assert srv.api1("store_get", None, invite["token"]) is None
        assert srv.api1("store_get", "spammer", invite["token"]) is None
        assert show(srv, invite["token"])["State"] == ["revoked"]
    assert srv.api1("store_get", None, keep["token"]) is not None
    assert not client.register(srv, new_name(), PW, made[0]["token"], login=False).ok


def test_use_limit_registers_exactly_n_accounts(srv):
    ok, out, err = shell(srv, "create_account", HOST, "--uses", "2")
    assert ok, (out, err)
    token = token_in(out)
    assert listed(srv)[token][3] == "2"
    first, second, third = new_name("limited"), new_name("limited"), new_name("limited")
    assert client.register(srv, first, PW, token, login=False).ok
    assert listed(srv)[token][3] == "1"
    assert client.register(srv, second, PW, token, login=False).ok
    assert not client.register(srv, third, PW, token, login=False).ok
    assert srv.api1("store_get", None, token) is None
    fields = show(srv, token)
    assert fields["State"] == ["used"] and len(fields["Used by"]) == 2


def test_streams_racing_a_limited_invite(srv):
    invite = srv.api1("create_account", None, {"max_uses": 2})
    names = [new_name("racer") for _ in range(5)]
    results = rawxmpp.race_register(srv, invite["token"], names, password=PW)
    assert all(r["preauth_ok"] for r in results), results
    winners = [r["username"] for r in results if r["register_ok"]]
    assert len(winners) == 2, results
    assert [n for n in names if srv.api1("user_exists", n)] == winners
    assert srv.api1("store_get", None, invite["token"]) is None


def test_use_limits_only_on_invites_that_register(srv):
    before = len(srv.api1("list_pending") or [])
    for fn, args in (
        ("create_contact", ["alice", False, {"max_uses": 2}]),  # contact-only: nothing to count
        ("create_account", [None, {"max_uses": 0}]),
        ("create_account", [None, {"max_uses": 1.5}]),
        ("create_account", [None, {"max_uses": "2"}]),
    ):
        refused = srv.api(fn, *args)
        assert refused[:2] == [None, "bad-request"] and "max_uses" in refused[2], (fn, args, refused)
    assert len(srv.api1("list_pending") or []) == before


def test_a_limited_group_invite_stops_at_its_limit(srv):
    group = srv.api1("create_group", ["team"], {"max_uses": 1}, 3600)
    assert group["reusable"] is True
    assert client.register(srv, new_name("team"), PW, group["token"], login=False).ok
    assert not client.register(srv, new_name("team"), PW, group["token"], login=False).ok


def test_prosodyctl_verbs_work_with_the_server_stopped(make_server):
    srv = make_server()
    srv.api("create_user", "alice", PW)
    contact = srv.api1("create_contact", "alice", False)
    account = srv.api1("create_account", None, {"source": "alice@localhost/x"})
    srv.stop()

    res = srv.prosodyctl("mod_invites", "list", HOST, "--creator", "alice@localhost")
    assert res.returncode == 0 and "2 pending invites" in res.stdout, res
    assert contact["token"] in res.stdout and account["token"] in res.stdout
    res = srv.prosodyctl("mod_invites", "show", HOST, contact["token"])
    assert res.returncode == 0 and re.search(r"State:\s+pending", res.stdout), res
    res = srv.prosodyctl("mod_invites", "delete", HOST, contact["token"])
    assert res.returncode == 0 and "Invitation deleted" in res.stdout, res
    res = srv.prosodyctl("mod_invites", "revoke_by", HOST, "alice@localhost")
    assert res.returncode == 0 and "Revoked 1 invitations" in res.stdout, res
    res = srv.prosodyctl("mod_invites", "show", HOST, account["token"])
    assert re.search(r"Revoked:.* by prosodyctl", res.stdout), res
    for words, reason in [(["list", "nosuch.invalid"], "not defined"), (["show", HOST], "Missing argument"),
                          (["list", HOST, "--frob"], "Unknown parameter: --frob")]:
        res = srv.prosodyctl("mod_invites", *words)
        assert res.returncode != 0 and reason in res.stderr, (words, res)
    # A mistake in a verb's words is followed by how the verb is written (from the core's table).
    res = srv.prosodyctl("mod_invites", "show", HOST)
    assert "usage: prosodyctl mod_invites show HOST TOKEN" in res.stderr, res
    res = srv.prosodyctl("mod_invites", "frob")
    assert res.returncode == 2 and "usage: prosodyctl mod_invites generate|list|show|delete|" in res.stderr, res

    srv.start()
    assert srv.api1("store_get", None, account["token"]) is None
    assert srv.api1("store_get", "alice", contact["token"]) is None


# ---------------------------------------------------------------------- ad-hoc commands

LIST = "urn:x-prosody-invites:commands#list"
REVOKE = "urn:x-prosody-invites:commands#revoke"
MINE = "urn:x-prosody-invites:commands#mine"
CONTACT = "urn:xmpp:invite#invite"
ACCOUNT = "urn:xmpp:invite#create-account"


def options_in(result) -> set:
    """The values of the list-multi field's options in a command's form."""
    return set(re.findall(r"<(?:\w+:)?value>(" + TOKEN + r")</(?:\w+:)?value>", result.xml or ""))


def contact_token(result) -> str:
    assert result.ok, result.xml
    return token_in(result.form.value("uri"))


def test_admin_lists_and_revokes_with_ad_hoc_commands(srv):
    first = srv.api1("create_contact", "alice", True)
    second = srv.api1("create_contact", "alice", True)
    listing, revoked = adhoc_client.steps(srv, "admin@localhost/x", PW, LIST, [("execute", None),
                                                                            ("complete", {"invites": [first["token"]]})])
    assert listing.status == "executing", listing.xml
    assert {first["token"], second["token"]} <= options_in(listing)
    assert revoked.status == "completed" and ("info", "Revoked 1 invites") in revoked.notes, revoked.xml
    assert srv.api1("store_get", None, first["token"]) is None
    assert srv.api1("store_get", None, second["token"]) is not None

    result = adhoc_client.steps(srv, "admin@localhost/x", PW, REVOKE, [("execute", None),
                                                                     ("complete", {"token": second["token"]})])[-1]
    assert result.status == "completed", result.xml
    assert srv.api1("store_get", "alice", second["token"]) is None
    again = adhoc_client.steps(srv, "admin@localhost/x", PW, REVOKE, [("execute", None),
                                                                    ("complete", {"token": second["token"]})])[-1]
    assert again.error is not None and again.error.condition == "item-not-found", again.xml


def test_users_see_and_revoke_only_their_own(srv):
    mine = contact_token(client.adhoc(srv, "alice@localhost", PW, CONTACT))
    theirs = srv.api1("create_account", None, {"source": "admin@localhost/x"})["token"]
    listing, done = adhoc_client.steps(srv, "alice@localhost/x", PW, MINE, [("execute", None),
                                                                          ("complete", {"invites": [mine, theirs]})])
    assert mine in options_in(listing) and theirs not in options_in(listing), listing.xml
    assert ("info", "Revoked 1 invites; 1 were not pending invites of this list") in done.notes, done.xml
    assert srv.api1("store_get", "alice", mine) is None
    assert srv.api1("store_get", None, theirs) is not None
    refused = client.adhoc(srv, "alice@localhost", PW, LIST)
    assert not refused.listed and not refused.ok, refused.xml


def test_admins_may_give_an_account_invite_several_uses(srv):
    result = client.adhoc(srv, "admin@localhost", PW, ACCOUNT, {"uses": "3"})
    assert result.ok, result.xml
    token = token_in(result.form.value("uri"))
    assert srv.api1("store_get", None, token)["additional_data"]["max_uses"] == 3


def test_quotas_for_users(make_server):
    srv = make_server(hosts={HOST: {"admins": ["admin@localhost"],
                                    "invites_user_quota": {"count": 2, "period": "1 week"}}})
    for user in ("alice", "admin"):
        srv.api("create_user", user, PW)
    for _ in range(2):
        assert client.adhoc(srv, "alice@localhost", PW, CONTACT).ok
    refused = client.adhoc(srv, "alice@localhost", PW, CONTACT)
    assert refused.error is not None and refused.error.condition == "resource-constraint", refused.xml
    assert re.fullmatch(r"You can create 2 invites per week; the next one is possible on \d{4}-\d\d-\d\d",
                        refused.error.text), refused.error.text
    for _ in range(3):
        assert client.adhoc(srv, "admin@localhost", PW, CONTACT).ok, "admins have no quota"


def test_pending_limit_for_users(make_server):
    srv = make_server(hosts={HOST: {"invites_user_max_pending": 1}})
    srv.api("create_user", "alice", PW)
    first = contact_token(client.adhoc(srv, "alice@localhost", PW, CONTACT))
    refused = client.adhoc(srv, "alice@localhost", PW, CONTACT)
    assert refused.error is not None and "outstanding" in refused.error.text, refused.xml
    assert srv.api1("delete_account_invite", first)
    assert client.adhoc(srv, "alice@localhost", PW, CONTACT).ok


# ---------------------------------------------------------------------- events and statistics


def test_events_for_other_modules(srv):
    before = len(srv.api1("lifecycle_events") or [])
    used = srv.api1("create_account")
    name = new_name("evented")
    assert client.register(srv, name, PW, used["token"], login=False).ok
    revoked = srv.api1("create_account")
    assert srv.api1("delete_account_invite", revoked["token"], "admin@localhost")
    events = (srv.api1("lifecycle_events") or [])[before:]
    assert {"event": "invite-used", "token": used["token"], "username": f"{name}@{HOST}", "how": "registered"} in events
    assert {"event": "invite-revoked", "token": revoked["token"], "by": "admin@localhost"} in events


def test_counters_in_prosodys_statistics(make_server):
    srv = make_server(modules=[*DEFAULT_MODULES, "http_openmetrics"],
                      options={"statistics": "internal", "statistics_interval": "manual"})
    invite = srv.api1("create_account")
    assert client.register(srv, new_name("counted"), PW, invite["token"], login=False).ok
    srv.api1("delete_account_invite", srv.api1("create_contact", "nobody", False)["token"])
    assert not client.register(srv, new_name(), PW, "NoSuchToken0123456789abc", login=False).preauth
    metrics = srv.http_get("/metrics").body.decode()
    for line in ['prosody_mod_invites__created_total{host="localhost",kind="account"} 1',
                 'prosody_mod_invites__created_total{host="localhost",kind="contact"} 1',
                 'prosody_mod_invites__used_total{host="localhost",how="registered"} 1',
                 'prosody_mod_invites__revoked_total{host="localhost"} 1',
                 'prosody_mod_invites_register__preauth_refused_total{host="localhost",condition="item-not-found"} 1']:
        assert line in metrics, (line, [m for m in metrics.splitlines() if "invites" in m and not m.startswith("#")])
    shown = srv.prosodyctl("shell", "stats:show('invites')")
    assert "prosody_mod_invites/created" in shown.stdout and "kind=account" in shown.stdout, shown


def test_audit_records_are_kept_for_the_retention_then_purged(make_server):
    srv = make_server(hosts={HOST: {"invites_audit_retention": "30 days"}})
    used, pending = srv.api1("create_account"), srv.api1("create_account")
    assert client.register(srv, new_name("kept"), PW, used["token"], login=False).ok
    audit = srv.api1("audit_get", used["token"])
    assert audit["kind"] == "account" and len(audit["uses"]) == 1
    srv.api("purge")
    assert srv.api1("audit_get", used["token"]) is not None, "kept while within the retention"
    day = 86400
    audit["uses"][0]["at"] -= 31 * day
    audit["expires"] -= 31 * day
    srv.api("audit_set", used["token"], audit)
    srv.api("purge")
    assert srv.api1("audit_get", used["token"]) is None
    assert srv.api1("audit_get", pending["token"]) is not None, "a pending invite keeps its record"
