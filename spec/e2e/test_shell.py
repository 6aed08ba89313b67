"""The admin shell's `invite` section, typed as Prosody 13's documentation shows it:
`prosodyctl shell invite VERB ARGS --flags`. The same command lines work on 0.12 (whose shell turns
them into `invite:VERB("ARG", "--flag", ...)`) and on 13 (shell-command items), and on 13 also
`help invite`. Stock 0.12 has none of these verbs, and stock 13 refuses `--admin`: against stock
these tests show what the operator gains.
"""

from __future__ import annotations

import re

import pytest

from prosody import ProsodyServer
from prosody_host import prosody_version

HOST = "localhost"
TOKEN = r"[A-Za-z0-9_-]{16,}"
VERBS = ("create_account", "create_reset", "create_contact", "show", "delete", "list")


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    server = ProsodyServer(e2e_base_dir / "shell", hosts={HOST: {}})
    server.start()
    server.api("create_user", "alice", "pw")
    server.api("create_user", "rosa", "pw")
    yield server
    server.stop()
    server.assert_no_tracebacks()


def shell(srv, *words):
    """One shell command as separate words; (ok, stdout, stderr)."""
    res = srv.prosodyctl("shell", *words)
    return res.returncode == 0 and not res.stderr.strip(), res.stdout, res.stderr


def token_in(text: str) -> str:
    m = re.search(rf"preauth=({TOKEN})", text)
    assert m, f"no invite link in {text!r}"
    return m.group(1)


def stored_roles(roles: list):
    """additional_data.roles as the running release's stock modules read it."""
    return roles if prosody_version() >= (13,) else {role: True for role in roles}


def tokens(srv) -> set:
    return set((srv.api1("store_all", None) or {}).keys())


def test_create_account_with_flags(srv):
    ok, out, err = shell(srv, "invite", "create_account", HOST, "--role", "prosody:member", "--admin",
                         "--group", "g1", "--expires-after", "2 days")
    assert ok, (out, err)
    record = srv.api1("store_get", None, token_in(out))
    assert re.search(rf"OK: xmpp:{HOST}\?register;preauth={TOKEN}", out), out
    assert record["jid"] == HOST and record["type"] == "register"
    assert record["additional_data"]["roles"] == stored_roles(["prosody:admin", "prosody:member"])
    assert record["additional_data"]["groups"] == ["g1"]
    assert record["expires"] - record["created_at"] == 172800


def test_create_account_for_one_username(srv):
    ok, out, err = shell(srv, "invite", "create_account", f"zoe@{HOST}")
    assert ok, (out, err)
    assert re.search(rf"xmpp:zoe@{HOST}\?register;preauth={TOKEN}", out), out
    assert srv.api1("store_get", None, token_in(out))["jid"] == f"zoe@{HOST}"


def test_create_reset(srv):
    ok, out, err = shell(srv, "invite", "create_reset", f"rosa@{HOST}")
    assert ok, (out, err)
    assert f"Password reset link for rosa@{HOST} valid until" in out
    record = srv.api1("store_get", None, token_in(out))
    assert record["additional_data"]["allow_reset"] == "rosa"
    assert record["expires"] - record["created_at"] == 86400


def test_create_reset_of_a_missing_account_is_refused(srv):
    before = tokens(srv)
    ok, out, err = shell(srv, "invite", "create_reset", f"nobody@{HOST}")
    assert not ok and f"No such account: nobody@{HOST}" in err, (out, err)
    assert tokens(srv) == before


@pytest.mark.parametrize("flags, ibr", [([], False), (["--allow-registration"], True)])
def test_create_contact(srv, flags, ibr):
    ok, out, err = shell(srv, "invite", "create_contact", f"alice@{HOST}", *flags)
    assert ok, (out, err)
    uri = re.search(rf"xmpp:alice@{HOST}\?roster;preauth={TOKEN}(;ibr=y)?", out)
    assert uri and bool(uri.group(1)) == ibr, out
    assert srv.api1("store_get", "alice", token_in(out)) is not None


def test_show_list_delete(srv):
    ok, out, _ = shell(srv, "invite", "create_account", f"nina@{HOST}", "--role", "prosody:member")
    token = token_in(out)

    ok, out, err = shell(srv, "invite", "show", HOST, token)
    assert ok, (out, err)
    assert f"Invitation to register on {HOST} with username 'nina'" in out
    assert re.search(r"Expires:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", out), out
    assert re.search(rf"XMPP URI:\s+xmpp:nina@{HOST}\?register;preauth={token}", out), out
    assert re.search(r"Role:\s+prosody:member", out), out
    assert re.search(r"Creator:\s+shell", out) and re.search(r"State:\s+pending", out), out
    assert "OK: Invitation valid" in out

    ok, out, err = shell(srv, "invite", "list", HOST)
    assert ok, (out, err)
    rows = [line for line in out.splitlines() if re.match(TOKEN + " ", line)]
    row = next((line for line in rows if line.startswith(token)), None)
    assert row and re.search(r"\| account +\| shell +\|", row), out
    count = re.search(r"OK: (\d+) pending invites", out)
    assert count and int(count.group(1)) == len(rows) >= len(tokens(srv)), out

    ok, out, err = shell(srv, "invite", "delete", HOST, token)
    assert ok and "OK: Invitation deleted" in out, (out, err)
    assert srv.api1("store_get", None, token) is None
    ok, out, err = shell(srv, "invite", "show", HOST, token)
    assert ok and re.search(r"State:\s+revoked", out) and re.search(r"Revoked:.* by shell", out), (out, err)
    assert "OK: Invitation revoked" in out


@pytest.mark.parametrize(
    "words, reason",
    [
        (["create_account", HOST, "--frob"], "Unknown parameter: --frob"),
        (["create_account", HOST, "--role"], "Expected value after --role"),
        (["create_account", HOST, "--expires-after", "soon"], "--expires-after: invalid period 'soon'"),
        (["create_contact", f"alice@{HOST}", "--expires-after", "0"], "--expires-after: invalid period '0'"),
        (["create_reset", HOST], "Supply the JID of the account"),
    ],
)
def test_mistakes_are_one_line_errors_and_create_nothing(srv, words, reason):
    before = tokens(srv)
    ok, out, err = shell(srv, "invite", *words)
    assert not ok and reason in err, (out, err)
    # 0.12's words are read by the core, which ends a mistake in them with the verb's usage; 13's
    # shell reads its flags itself.
    if prosody_version() < (13,) and reason.startswith(("Unknown parameter", "Expected value")):
        assert f"(usage: invite {words[0]} " in err, err
    assert "traceback" not in (out + err).lower()
    assert tokens(srv) == before


def test_lua_form_still_works(srv):
    res = srv.shell(f'invite:create_account("{HOST}")')
    assert res.ok and token_in(res.text), res
    res = srv.shell(f'invite:create_contact("alice@{HOST}", true)')
    assert res.ok and res.text.endswith(";ibr=y"), res


@pytest.mark.only_on("13", reason="0.12's shell has no per-section help")
def test_help_invite(srv):
    ok, out, err = shell(srv, "help", "invite")
    assert ok, (out, err)
    assert "Create and manage invitations" in out
    for verb in VERBS:
        assert f"invite {verb} <" in out, (verb, out)
    assert "--admin" in out and "--allow-registration" in out and "--role <role>, ..." in out


@pytest.mark.only_on("13", reason="0.12's stock generate is the reference there (test_mod_invites.py)")
def test_generate_keeps_working_on_13(srv):
    """Stock 13 deprecated `prosodyctl mod_invites generate` (exit 1); ours keeps it."""
    res = srv.prosodyctl("mod_invites", "generate", HOST, "--role", "prosody:member")
    assert res.returncode == 0, res
    record = srv.api1("store_get", None, token_in(res.stdout))
    assert record["additional_data"]["roles"] == ["prosody:member"]
