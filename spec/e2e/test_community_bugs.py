"""Defects of the community modules themselves (Debian prosody-modules 0.0~hg20230223), which we
cannot fix without changing them. These tests pin down that each stays harmless with our modules
underneath: no account or invite is created, nothing else breaks, and the server keeps serving.
Where the module answers 500, its traceback is the only one allowed in the log.
"""

from __future__ import annotations

import re

import pytest

import web_client
from community import GOOD_PASSWORD, SITE_NAME, community_kwargs
from prosody_ctl import last_line

HOST = "localhost"
KNOWN_TRACEBACKS = (
    # mod_invites_api form-decodes the query string, which is nil when there is none
    r"Traceback\[httpserver\]: \S*/util/http\.lua:\d+: attempt to index a nil value \(local 's'\)",
    # mod_invites_register_web builds its redirect from the query string, nil when there is none
    r"Traceback\[httpserver\]: \S*mod_invites_register_web\.lua:\d+: attempt to concatenate a nil value "
    r"\(field 'query'\)",
)


@pytest.fixture
def srv(make_server, tmp):
    server = make_server(**community_kwargs(tmp))
    for pattern in KNOWN_TRACEBACKS:
        server.allow_log(pattern)
    server.allow_log(r"^\tstack traceback:$")
    yield server
    # Each allowed "stack traceback:" line belongs to one of the known errors.
    log = server.log_text().splitlines()
    known = [ln for ln in log if any(re.search(p, ln) for p in KNOWN_TRACEBACKS)]
    stacks = [ln for ln in log if ln == "\tstack traceback:"]
    assert len(stacks) <= len(known), "a traceback other than the known community-module ones"


def test_invites_api_request_without_a_query_string(srv):
    """With the key in an Authorization header and no query string, mod_invites_api fails (500).
    Any query string avoids it (`/invites_api?x`), as does sending the key as `?key=ID/TOKEN`."""
    web = web_client.WebClient(srv)
    key = last_line(srv.prosodyctl("mod_invites_api", "create", HOST, "header-only").stdout)
    before = set((srv.api1("store_all") or {}).keys())
    resp = web.get("/invites_api", headers={"Authorization": f"Bearer {key}"})
    assert resp.status in (500, 201), resp.status  # 500 in the Debian snapshot
    if resp.status == 500:
        assert set((srv.api1("store_all") or {}).keys()) == before
    assert web.get("/invites_api?x", headers={"Authorization": f"Bearer {key}"}).status == 201


def test_register_web_post_without_a_query_string(srv):
    """A POST to /register without a query string and with a bad token fails in
    mod_invites_register_web (500) instead of redirecting. Browsers post the form back to the page
    URL, which has the query string, so only hand-made requests get here."""
    web = web_client.WebClient(srv)
    resp = web.request("POST", "/register", body=b"user=mallory&password=" + GOOD_PASSWORD.encode() + b"&token=bad",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status in (500, 303), resp.status  # 500 in the Debian snapshot
    assert not srv.api1("user_exists", "mallory")
    invite = srv.api1("create_account")
    assert web.get(f"/register?t={invite['token']}").status == 200


def test_setup_page_for_an_unknown_app_and_trailing_slash(srv):
    """mod_invites_page renders an unknown app id with its placeholders unfilled ("{app.name}")
    and answers 404 for `/invites_page/` with a trailing slash; neither is a server error."""
    web = web_client.WebClient(srv)
    invite = srv.api1("create_account")
    resp = web.get(f"/invites_page/setup/no-such-app?{invite['token']}")
    assert resp.status == 200 and f"Join {SITE_NAME} with" in resp.page.text
    assert web.get(f"/invites_page/?{invite['token']}").status == 404
    assert web.get(invite["landing_page"]).status == 200
