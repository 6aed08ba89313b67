"""mod_invites_web over plain HTTP (the end-to-end tier; the browser tier drives the same pages
in Chromium): every invite gets our landing page unless `invites_page` says otherwise, one neutral
page for every invite that is not valid, the security headers and cookies, escaping, languages,
a path prefix behind a proxy, the operator's client list, and "my invites" with the ad-hoc
commands' policy and refusal texts.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

import client
from prosody import ProsodyServer
from prosody_config import DEFAULT_MODULES
from prosody_host import default_impl, is_stock

HOST = "localhost"
PROXIED = "proxied.localhost"
EXTERNAL = "https://chat.example.test/xmpp/"
TEMPLATE = "tpl.localhost"
PASSWORD = "correct-horse-battery"
NS_CONTACT = "urn:xmpp:invite#invite"
MUC = "conference.localhost"
ROOM = f"lounge@{MUC}"


pytestmark = pytest.mark.skipif(is_stock(default_impl()), reason="mod_invites_web is this project's module")


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    apps = e2e_base_dir / "apps.json"
    apps.write_text(json.dumps([{"id": "testchat", "name": "Test<Chat>", "platforms": ["linux", "android"],
                                 "text": "Only for tests.",
                                 "links": [{"label": "Store", "url": "https://store.example.test/app?id=x",
                                            "referrer": True}]}]))
    apps.chmod(0o644)
    server = ProsodyServer(
        e2e_base_dir / "web", name="web",
        hosts={
            HOST: {"invites_web_apps_file": str(apps), "invites_user_max_pending": 1},
            PROXIED: {"http_external_url": EXTERNAL},
            TEMPLATE: {"invites_page": "https://join.example.test/{invite.token}"},
        },
        components={MUC: ("muc", {})},
        modules=[*DEFAULT_MODULES, "invites_web", "pep", "bookmarks", "offline"],
        options={"site_name": "Web Test", "admins": [f"admin@{HOST}"]},
    )
    server.start()
    server.api("muc_create", ROOM, {"name": "Lounge <3", "members_only": True})
    server.create_user("alice", PASSWORD)
    server.create_user("admin", PASSWORD)
    try:
        yield server
    finally:
        server.stop()
    server.assert_no_tracebacks()


class Visitor:
    """A browser-like HTTP client: cookies kept, no redirects followed."""

    def __init__(self, srv, host=HOST):
        self.srv, self.host = srv, host
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect,
                                                  urllib.request.HTTPCookieProcessor(self.jar))

    def url(self, path):
        return f"http://127.0.0.1:{self.srv.http_port}{path}"

    def request(self, path, data=None, headers=None):
        if path.startswith("http"):
            parts = urllib.parse.urlsplit(path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.url(path), data=body, headers={"Host": self.host, **(headers or {})},
                                     method="POST" if data is not None else "GET")
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.headers, e.read().decode()

    def csrf(self, page):
        m = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert m, page[:500]
        return m.group(1)

    def login(self, user, password=PASSWORD):
        _, _, page = self.request("/invite/me")
        status, headers, _ = self.request("/invite/me/login", {"jid": f"{user}@{HOST}", "password": password,
                                                                "csrf": self.csrf(page)})
        assert status == 303, status
        return headers


def assert_safe_headers(headers):
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers.get("Access-Control-Allow-Origin") is None


def test_every_new_invite_points_at_our_landing_page(srv):
    base = f"http://{HOST}:{srv.http_port}/invite?"
    account = srv.api1("create_account")
    contact = srv.api1("create_contact", "alice", False)
    reset = srv.api1("create_account_reset", "alice")
    for invite in (account, contact, reset):
        assert invite["landing_page"] == base + invite["token"], invite
    res = srv.shell(f'invite:create_account("{HOST}")')
    assert res.ok and res.text.startswith(base), res
    # behind a proxy: http_external_url with its path, for the server and for prosodyctl
    proxied = srv.api1("create_account", host=PROXIED)
    assert proxied["landing_page"] == f"{EXTERNAL}invite?{proxied['token']}"
    printed = srv.generate_invite(PROXIED)
    assert re.fullmatch(re.escape(EXTERNAL) + r"invite\?[A-Za-z0-9_-]{16,}", printed), printed
    # an explicit invites_page wins
    templated = srv.api1("create_account", host=TEMPLATE)
    assert templated["landing_page"] == f"https://join.example.test/{templated['token']}"


def test_landing_page_headers_content_and_client_list(srv):
    invite = srv.api1("create_account")
    v = Visitor(srv)
    status, headers, page = v.request(invite["landing_page"], headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    assert status == 200
    assert_safe_headers(headers)
    assert headers["Link"] == f'<{invite["uri"]}>; rel="alternate"'
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie, cookie
    assert f'href="{invite["uri"]}"' in page.replace("&amp;", "&")
    # the operator's list (escaped), its store link carrying the invite
    assert "Test&lt;Chat&gt;" in page and "Test<Chat>" not in page
    assert "https://store.example.test/app?id=x&amp;referrer=" + urllib.parse.quote(invite["uri"], safe="").lower() in page.lower()
    # no asset from another site: every src/href to a stylesheet or script is ours
    for ref in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page):
        assert ref.startswith("/invite/static/") or ref == "data:,", ref
    for asset in ("/invite/static/invites.css", "/invite/static/invites.js"):
        status, headers, _ = v.request(asset)
        assert status == 200 and headers["Content-Type"].startswith(("text/css", "text/javascript")), (asset, headers)
    # the QR code is inline SVG, no script on the page but ours
    assert "<svg" in page and "<script>" not in page


def test_one_neutral_page_for_every_invite_not_valid(srv):
    used = srv.api1("create_account")
    assert client.register(srv, "usedone", PASSWORD, used["token"]).registration.ok
    revoked = srv.api1("create_account")
    srv.api1("delete_account_invite", revoked["token"])
    v = Visitor(srv)
    pages = {}
    for name, token in {"used": used["token"], "revoked": revoked["token"], "unknown": "A" * 24,
                        "junk": "%3Cscript%3E", "bad": "x;y&z=1"}.items():
        status, headers, page = v.request(f"/invite?{token}")
        assert status == 404, (name, status)
        assert_safe_headers(headers)
        pages[name] = page
    assert len(set(pages.values())) == 1, pages.keys()
    assert "This invite is no longer valid." in pages["used"]
    for path in ("/register", "/reset"):
        status, _, page = v.request(f"/invite{path}?{used['token']}")
        assert status == 404 and page == pages["used"]


def test_languages_from_accept_language(srv):
    invite = srv.api1("create_account")
    v = Visitor(srv)
    _, headers, page = v.request(invite["landing_page"], headers={"Accept-Language": "fr;q=0.9, de-DE;q=0.8, en;q=0.5"})
    assert headers["Content-Language"] == "de" and '<html lang="de">' in page
    assert "Du wurdest eingeladen, ein Konto auf Web Test anzulegen." in page
    _, headers, page = v.request(invite["landing_page"], headers={"Accept-Language": "en-GB, de;q=0.3"})
    assert headers["Content-Language"] == "en" and "You have been invited to create an account" in page


def test_signup_form_escapes_what_it_echoes_and_needs_its_csrf_token(srv):
    invite = srv.api1("create_account")
    v = Visitor(srv)
    _, _, form = v.request(f"/invite/register?{invite['token']}")
    csrf = v.csrf(form)
    evil = '"><img src=x onerror=alert(1)>'
    status, _, page = v.request("/invite/register",
                                {"token": invite["token"], "username": evil, "password": PASSWORD, "password2": "other", "csrf": csrf})
    assert status == 400 and "The two passwords differ." in page
    assert evil not in page and "&quot;&gt;&lt;img" in page
    # a token from another visitor (their cookie) does not work here
    other = Visitor(srv)
    _, _, other_form = other.request(f"/invite/register?{invite['token']}")
    status, _, page = v.request("/invite/register",
                                {"token": invite["token"], "username": "stolen", "password": PASSWORD, "password2": PASSWORD,
                                 "csrf": other.csrf(other_form)})
    assert status == 403 and "Form refused" in page
    assert not srv.api1("user_exists", "stolen")


def test_secure_cookies_and_prefixed_paths_behind_a_proxy(srv):
    invite = srv.api1("create_account", host=PROXIED)
    v = Visitor(srv, host=PROXIED)
    status, headers, page = v.request("/invite?" + invite["token"])
    assert status == 200
    assert 'href="/xmpp/invite/static/invites.css"' in page
    assert f'href="/xmpp/invite/register?{invite["token"]}"' in page
    cookie = headers["Set-Cookie"]
    assert "Secure" in cookie and "Path=/xmpp/invite" in cookie, cookie


def test_my_invites_follow_the_adhoc_policy_and_quota(srv):
    srv.create_user("dora", PASSWORD)
    v = Visitor(srv)
    headers = v.login("dora")
    cookie = headers["Set-Cookie"]
    assert "invites_web_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    _, _, page = v.request("/invite/me")
    status, _, created = v.request("/invite/me/create", {"csrf": v.csrf(page)})
    assert status == 200
    assert '<p class="error"' not in created
    link = re.search(r'id="new-h".*?class="link" href="([^"]+)"', created).group(1)
    token = link.split("?", 1)[1]
    info = srv.api1("inspect", token)
    assert info["audit"]["creator"] == f"dora@{HOST}" and info["audit"]["kind"] == "contact"  # no ibr: not allowed
    # invites_user_max_pending = 1: the same refusal as the ad-hoc command
    status, _, refused = v.request("/invite/me/create", {"csrf": v.csrf(created)})
    adhoc = client.adhoc(srv, f"dora@{HOST}", PASSWORD, NS_CONTACT)
    assert adhoc.error is not None and adhoc.error.text, adhoc
    assert re.search(r'<p class="error" role="alert">([^<]*)</p>', refused).group(1) == adhoc.error.text, refused
    # the admin page is for admins only, even with a valid token
    status, _, _ = v.request("/invite/admin")
    assert status == 403
    status, _, _ = v.request("/invite/admin/revoke", {"token": token, "csrf": v.csrf(refused)})
    assert status == 403
    assert srv.api1("inspect", token)["state"] == "pending"
    # log out: the session is gone
    v.request("/invite/me/logout", {"csrf": v.csrf(refused)})
    _, _, page = v.request("/invite/me")
    assert "Log in with your chat address" in page


def test_tokens_appear_in_the_log_as_a_prefix_only(srv):
    invite = srv.api1("create_account")
    v = Visitor(srv)
    _, _, form = v.request(f"/invite/register?{invite['token']}")
    status, _, _ = v.request("/invite/register",
                             {"token": invite["token"], "username": "logcheck", "password": PASSWORD, "password2": PASSWORD, "csrf": v.csrf(form)})
    assert status == 200 and client.can_login(srv, f"logcheck@{HOST}", PASSWORD)
    log = srv.log_text()
    assert "Registered logcheck through the web" in log
    assert invite["token"] not in log


def test_web_signup_with_a_contact_invite_makes_both_contacts(srv):
    """The roster subscription of a contact+ibr invite, done by mod_invites_register on the
    user-registered the web form fires."""
    srv.create_user("erin", PASSWORD)
    invite = srv.api1("create_contact", "erin", True)
    v = Visitor(srv)
    status, _, landing = v.request(f"/invite?{invite['token']}")
    assert status == 200 and "erin@localhost invites you to chat." in landing
    _, _, form = v.request(f"/invite/register?{invite['token']}")
    status, _, done = v.request("/invite/register", {"token": invite["token"], "username": "frank", "password": PASSWORD,
                                                      "password2": PASSWORD, "csrf": v.csrf(form)})
    assert status == 200 and "Your account frank@localhost is ready." in done, done[:1000]
    assert srv.api1("roster", "frank")["erin@localhost"]["subscription"] == "both"
    assert srv.api1("roster", "erin")["frank@localhost"]["subscription"] == "both"
    assert srv.api1("inspect", invite["token"])["state"] == "used"
    # single use: a second sign-up with it gets the neutral page
    status, _, again = v.request("/invite/register", {"token": invite["token"], "username": "grace",
                                                       "password": PASSWORD, "password2": PASSWORD, "csrf": v.csrf(form)})
    assert status == 404 and "no longer valid" in again
    assert not srv.api1("user_exists", "grace")


def test_group_chats_an_invite_carries_are_shown_and_joined_through_the_web(srv):
    invite = srv.api1("create_account", None, {"rooms": [ROOM]})
    v = Visitor(srv)
    status, _, landing = v.request(f"/invite?{invite['token']}")
    assert status == 200 and "You will also join these group chats:" in landing and f"<li>{ROOM}</li>" in landing
    _, _, form = v.request(f"/invite/register?{invite['token']}")
    status, _, done = v.request("/invite/register", {"token": invite["token"], "username": "henry", "password": PASSWORD,
                                                      "password2": PASSWORD, "csrf": v.csrf(form)})
    assert status == 200 and "Your account henry@localhost is ready." in done
    assert srv.api1("muc_affiliation", ROOM, f"henry@{HOST}") == "member"
