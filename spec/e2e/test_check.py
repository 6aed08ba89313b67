"""The configuration check (README "Telling people"): `prosodyctl mod_invites check [HOST]` prints
one line per problem with what to change and exits non-zero when there is one; the admin shell's
`invite check HOST` says the same on a running server, and the same findings are logged as
warnings once mod_invites is loaded. Each finding has a configuration that triggers it and one
that does not. Stock has none of this.
"""

from __future__ import annotations

import os

import pytest

from prosody_config import DEFAULT_MODULES
from prosody_host import default_impl, is_stock

pytestmark = pytest.mark.skipif(is_stock(default_impl()), reason="the configuration check is this project's feature")

MUC = "conference.localhost"
CLEAN_MODULES = [*DEFAULT_MODULES, "offline"]
# The harness turns encryption off for its plain-TCP clients; a clean host has it on.
CLEAN_OPTIONS = {"c2s_require_encryption": True}


def without(modules, *names):
    return [m for m in modules if m not in names]


def check(make_server, *, host_options=None, options=None, modules=None, components=None, prepare=None):
    """prosodyctl mod_invites check localhost on a stopped server with this configuration."""
    srv = make_server(start=False, hosts={"localhost": dict(host_options or {})},
                      options={**CLEAN_OPTIONS, **(options or {})},
                      modules=CLEAN_MODULES if modules is None else modules, components=components or {})
    if prepare:
        prepare(srv)
    return srv.prosodyctl("mod_invites", "check", "localhost")


# (finding, text it prints, configuration that triggers it, one that does not)
CASES = [
    ("auth-creates-no-accounts", 'authentication = "anonymous" cannot create accounts',
     {"host_options": {"authentication": "anonymous"}}, {"host_options": {"authentication": "internal_hashed"}}),
    ("invites-register-missing", 'mod_invites_register is not enabled on localhost',
     {"modules": without(CLEAN_MODULES, "invites_register")}, {}),
    ("nothing-registers", "nothing can register on localhost",
     {"host_options": {"registration_invite_only": False, "allow_registration": False}},
     {"host_options": {"registration_invite_only": True, "allow_registration": False}}),
    ("open-registration", "registration_invite_only = false: anyone can register on localhost without an invite",
     {"host_options": {"registration_invite_only": False, "allow_registration": True}, "modules": [*CLEAN_MODULES, "register"]},
     {"host_options": {"registration_invite_only": True, "allow_registration": True}, "modules": [*CLEAN_MODULES, "register"]}),
    ("landing-page-without-http", "invites_page points at this server (localhost) but its HTTP server is not loaded",
     {"host_options": {"invites_page": "https://localhost/invite#{invite.uri}"},
      "modules": without(CLEAN_MODULES, "http", "invites_testapi")},
     {"host_options": {"invites_page": "https://localhost/invite#{invite.uri}"}}),
    ("landing-page-without-invite", "invites_page has no {invite.uri} or {invite.token}",
     {"host_options": {"invites_page": "https://invite.example/"}},
     {"host_options": {"invites_page": "https://invite.example/#{invite.uri}"}}),
    ("landing-page-plain-http", "invites_page uses http://: invite tokens travel in clear",
     {"host_options": {"invites_page": "http://invite.example/#{invite.uri}"}},
     {"host_options": {"invites_page": "https://invite.example/#{invite.uri}"}}),
    ("offline-missing", "mod_offline is not loaded on localhost",
     {"options": {"modules_disabled": ["offline"]}}, {"options": {"modules_disabled": ["vcard"]}}),
    ("exempt-everyone", "invites_preauth_exempt contains 0.0.0.0/0: the whole Internet is exempt from the pre-auth throttle",
     {"host_options": {"invites_preauth_exempt": ["0.0.0.0/0", "::1"]}},
     {"host_options": {"invites_preauth_exempt": ["127.0.0.1", "::1", "192.0.2.0/24"]}}),
    ("exempt-everyone (fallback option)", "registration_allowlist contains ::/0",
     {"host_options": {"registration_allowlist": ["::/0"]}}, {"host_options": {"registration_allowlist": ["::1"]}}),
    ("exempt-not-a-network", 'invites_preauth_exempt contains "localnet", which is not an address or network',
     {"host_options": {"invites_preauth_exempt": ["localnet"]}}, {"host_options": {"invites_preauth_exempt": ["127.0.0.0/8"]}}),
    ("unencrypted-invites", "c2s_require_encryption = false: invite tokens and new passwords on localhost may travel unencrypted",
     {"options": {"c2s_require_encryption": False}}, {"options": {"c2s_require_encryption": True}}),
]


@pytest.mark.parametrize("finding,text,bad,good", CASES, ids=[c[0] for c in CASES])
def test_each_finding(make_server, finding, text, bad, good):
    res = check(make_server, **bad)
    assert res.returncode == 1, res
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    assert [line for line in lines if text in line], (text, res.stdout)
    assert all(line.startswith("localhost: ") for line in lines), res.stdout
    assert "Traceback" not in res.stderr
    fixed = check(make_server, **good)
    assert fixed.returncode == 0 and text not in fixed.stdout, fixed
    assert "No problems found with invites on localhost" in fixed.stdout, fixed


def test_group_chats_of_pending_invites_need_their_muc(make_server):
    def invite_with_room(srv):
        res = srv.prosodyctl("mod_invites", "generate", "localhost", "--room", f"lounge@{MUC}")
        assert res.returncode == 0, res

    # Made while the component existed; it is gone from the configuration since.
    srv = make_server(start=False, options=CLEAN_OPTIONS, modules=CLEAN_MODULES, components={MUC: ("muc", {})})
    invite_with_room(srv)
    assert srv.prosodyctl("mod_invites", "check", "localhost").returncode == 0
    srv.components = {}
    srv.write_config()
    res = srv.prosodyctl("mod_invites", "check", "localhost")
    assert res.returncode == 1, res
    assert f"1 pending invite(s) on localhost carry group chats on {MUC}, which is not a MUC component" in res.stdout, res


def test_every_host_without_host_argument(make_server):
    srv = make_server(start=False, hosts={"localhost": {}, "other.localhost": {"authentication": "anonymous"}},
                      options=CLEAN_OPTIONS, modules=CLEAN_MODULES)
    res = srv.prosodyctl("mod_invites", "check")
    assert res.returncode == 1, res
    assert res.stdout.splitlines() == [
        'other.localhost: authentication = "anonymous" cannot create accounts, so account invites on other.localhost '
        'cannot be used: use a backend that can ("internal_hashed") or hand out contact invites only'], res.stdout
    bad = srv.prosodyctl("mod_invites", "check", "nosuch.example")
    assert bad.returncode == 2 and "not defined in the configuration" in bad.stderr, bad


def test_running_misconfigured_host_logs_and_shell_says_so(make_server):
    srv = make_server(hosts={"localhost": {"invites_preauth_exempt": ["0.0.0.0/0"], "registration_invite_only": False}},
                      modules=[*CLEAN_MODULES, "register"])
    srv.wait_for_log(r"warn\s+Configuration: invites_preauth_exempt contains 0\.0\.0\.0/0")
    srv.wait_for_log(r"warn\s+Configuration: registration_invite_only = false")
    res = srv.shell("invite", "check", "localhost")
    assert not res.ok and res.text == "3 problems with invites on localhost", res
    assert "localhost: registration_invite_only = false: anyone can register" in res.stdout, res
    assert "localhost: c2s_require_encryption = false" in res.stdout, res
    capture_check(srv)
    # Logged once, not on every registration or invite.
    srv.api1("create_account")
    log = srv.log_text()
    assert log.count("Configuration: invites_preauth_exempt contains 0.0.0.0/0") == 1, log


def capture_check(srv):
    path = os.environ.get("NOTIFY_CAPTURE")
    if path:
        res = srv.prosodyctl("mod_invites", "check", "localhost")
        with open(path, "a") as f:
            f.write(f"## prosodyctl mod_invites check localhost (exit {res.returncode})\n{res.stdout}{res.stderr}\n")


def test_running_clean_host(make_server):
    srv = make_server(options=CLEAN_OPTIONS, modules=CLEAN_MODULES)
    res = srv.shell("invite", "check", "localhost")
    assert res.ok and res.text == "No problems found with invites on localhost", res
    assert "Configuration:" not in srv.log_text()
