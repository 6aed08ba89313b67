"""mod_invites_api (Debian's prosody-modules) on top of our invite modules: API keys made with its
prosodyctl command create invites over HTTP, which carry the landing page and register accounts.

The module answers 500 to any request without a query string (it form-decodes a missing query;
see test_community_bugs.py), so requests that send the key in an Authorization header carry a
query string here, as they must against the Debian package.
"""

from __future__ import annotations

import base64
import re

import pytest

import client
import web_client
from community import GOOD_PASSWORD, check_module_sources, module_scoped_server, token_from
from prosody_ctl import last_line

HOST = "localhost"
KEY = re.compile(r"^([A-Za-z0-9_-]+)/([A-Za-z0-9_-]{16,})$")


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    yield from module_scoped_server(e2e_base_dir, "community-api")


@pytest.fixture
def web(srv):
    return web_client.WebClient(srv)


def create_key(srv, name):
    res = srv.prosodyctl("mod_invites_api", "create", HOST, name)
    assert res.returncode == 0, res
    key = last_line(res.stdout)
    assert KEY.match(key), res.stdout
    return key


def host_tokens(srv):
    return set((srv.api1("store_all") or {}).keys())


def test_api_key_from_prosodyctl_creates_an_invite_that_registers_an_account(srv, web):
    check_module_sources(srv)
    key = create_key(srv, "signup-form")
    key_id = KEY.match(key).group(1)

    resp = web.get(f"/invites_api?key={key}")
    assert resp.status == 201, (resp.status, resp.text[:300])
    landing = resp.location
    token = token_from(landing)
    assert landing == f"http://{HOST}:{srv.http_port}/invites_page?{token}"
    record = srv.api1("store_get", None, token)
    assert record["landing_page"] == landing and record["type"] == "register" and record["jid"] == HOST
    assert record["additional_data"]["source"] == f"api/token/{key_id}"

    page = web.get(landing)
    assert page.status == 200 and page.page.alternate() == record["uri"]

    result = client.register(srv, "apiuser", GOOD_PASSWORD, token)
    assert result.preauth and result.registration and result.logged_in, result
    assert client.can_login(srv, f"apiuser@{HOST}", GOOD_PASSWORD)
    assert srv.api1("store_get", None, token) is None  # used up
    assert "Invite expired" in web.get(landing).page.text


def test_api_key_in_an_authorization_header_and_redirect(srv, web):
    key = create_key(srv, "header-key")
    resp = web.get("/invites_api?via=header", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 201 and token_from(resp.location)
    resp = web.get("/invites_api?redirect=1", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 303, resp.status
    followed = web.follow(resp)
    assert followed.status == 200 and followed.page.alternate().startswith(f"xmpp:{HOST}?register;preauth=")


@pytest.mark.parametrize("auth", [
    None, "Bearer", "Bearer nosuchkey/nosuchtokennosuchtoken", "Bearer {id}/wrongtokenwrongtoken", "Bearer {id}",
    "Bearer /{token}", "Basic {basic}", "bearer {key}",
], ids=["none", "empty", "unknown", "wrong-token", "id-only", "token-only", "basic", "lowercase-scheme"])
def test_api_refuses_requests_without_a_valid_key(srv, web, auth):
    key = create_key(srv, "refusals")
    key_id, key_token = KEY.match(key).groups()
    before = host_tokens(srv)
    headers = {}
    if auth is not None:
        basic = base64.b64encode(key.encode()).decode()
        headers["Authorization"] = auth.format(id=key_id, token=key_token, key=key, basic=basic)
    resp = web.get("/invites_api?via=header", headers=headers)
    assert resp.status == 403, (auth, resp.status)
    assert resp.header("location") is None
    assert web.get(f"/invites_api?key={key_id}/wrong{key_token}").status == 403
    assert host_tokens(srv) == before, "a refused request created an invite"


def test_api_key_list_and_delete(srv, web):
    key = create_key(srv, "short-lived")
    key_id = KEY.match(key).group(1)
    res = srv.prosodyctl("mod_invites_api", "list", HOST)
    assert res.returncode == 0 and re.search(rf"^{re.escape(key_id)}\s+short-lived$", res.stdout, re.M), res
    assert web.get(f"/invites_api?key={key}").status == 201

    res = srv.prosodyctl("mod_invites_api", "delete", HOST, key_id)
    assert res.returncode == 0, res
    assert web.get(f"/invites_api?key={key}").status == 403
