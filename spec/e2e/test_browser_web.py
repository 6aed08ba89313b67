"""mod_invites_web in a real browser (the browser tier, $E2E_BROWSER): a person opens an invite
link, signs up through the form and logs in over XMPP; resets a password; logs in to "My invites",
creates a contact invite, scans its QR code, sees it used and revokes another; the admin page's
create, filter and revoke. Forms without the right CSRF token and admin actions of a normal user
are refused. Each page passes axe-core without serious or critical violations, at a phone-sized
and a desktop-sized window, and is photographed (docs/screenshots with WEB_SCREENSHOTS=1).

One server and one browser for the whole module (keeps the tier to a minute or so per host).
"""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

import client
import web_browser
from prosody import ProsodyServer
from prosody_config import DEFAULT_MODULES
from prosody_host import REPO_ROOT, default_impl, is_stock, prosody_version

HOST = "localhost"
SITE = "Example Chat"
PASSWORD = "correct-horse-battery"
ADMIN, ALICE, BOB, CAROL = "admin", "alice", "bob", "carol"


def jid(user):
    return f"{user}@{HOST}"


pytestmark = pytest.mark.skipif(is_stock(default_impl()), reason="mod_invites_web is this project's module")


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    missing = web_browser.missing_tools()
    if missing:
        pytest.fail(f"browser tier tools missing: {', '.join(missing)} (make deps axe venv)")
    server = ProsodyServer(e2e_base_dir / "browser-web", name="browser-web",
                           modules=[*DEFAULT_MODULES, "invites_web", "password_policy"],
                           options={"site_name": SITE, "admins": [jid(ADMIN)], "allow_user_invites": True})
    server.start()
    for user in (ADMIN, ALICE, BOB, CAROL):
        server.create_user(user, PASSWORD)
    try:
        yield server
    finally:
        server.stop()
    server.assert_no_tracebacks()


@pytest.fixture(scope="module")
def browser(e2e_base_dir, srv):
    b = web_browser.Browser(e2e_base_dir / "browser-web")
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def shots():
    label = "13" if prosody_version()[0] == 13 else "12"
    return web_browser.screenshot_dir(label)


@pytest.fixture
def fresh(browser):
    """A browser without cookies (nobody logged in), desktop-sized, Linux."""
    browser.driver.delete_all_cookies()
    browser.size(web_browser.DESKTOP)
    return browser


def base(srv):
    return f"http://{HOST}:{srv.http_port}/invite"


def check_page(browser, shots, name, *, phone=True, ua_phone=web_browser.ANDROID_UA):
    """axe-core at desktop and phone size (reloading the page), screenshots of both."""
    url = browser.driver.current_url
    found = {}
    for label, size, ua in (("desktop", web_browser.DESKTOP, web_browser.LINUX_UA),
                            ("phone", web_browser.PHONE, ua_phone)):
        if label == "phone" and not phone:
            continue
        browser.size(size, ua)
        if browser.driver.current_url != url or label == "phone":
            browser.open(url)
        # no horizontal scrolling at this width
        overflow = browser.driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, (name, label, overflow)
        found[label] = browser.serious_violations()
        browser.screenshot(shots / f"{name}-{label}.png")
    browser.size(web_browser.DESKTOP)
    assert found == {k: [] for k in found}, found


def login(browser, srv, user, password=PASSWORD):
    browser.open(base(srv) + "/me")
    browser.fill({"jid": jid(user), "password": password})
    browser.submit()
    assert f"Logged in as {jid(user)}" in browser.text(), browser.text()[:500]


# ---------------------------------------------------------------------------- landing page, sign-up


def test_landing_page_then_web_signup_then_xmpp_login(srv, fresh, shots, e2e_base_dir):
    b = fresh
    invite = srv.api1("create_account")
    assert invite["landing_page"] == f"{base(srv)}?{invite['token']}"
    b.open(invite["landing_page"])
    assert b.driver.title == f"Invitation to {SITE} · {SITE}"
    assert f"You have been invited to create an account on {SITE}." in b.text()
    # the xmpp: URI as the button
    assert b.find("a.button.big").get_attribute("href") == invite["uri"]
    # desktop: a QR code of this very page, rendered by the server
    assert b.decode_qr(".qr svg", e2e_base_dir / "qr-landing.png") == [invite["landing_page"]]
    # the visitor's platform (Linux, from the User-Agent) first and open; Play links carry the invite
    first = b.find_all("#apps details")[0]
    assert first.get_attribute("data-platform") == "linux" and first.get_attribute("open") is not None
    play = [a.get_attribute("href") for a in b.find_all("#apps a") if "play.google.com" in a.get_attribute("href")]
    assert play and all(urllib.parse.parse_qs(urllib.parse.urlsplit(h).query)["referrer"] == [invite["uri"]]
                        for h in play), play
    weight = b.page_weight()
    web_browser.save_json(REPO_ROOT / "target" / f"landing-weight-{'13' if prosody_version()[0] == 13 else '12'}.json", weight)
    assert weight["requests"] == 3, weight  # the page, its stylesheet, its script
    assert all(r["url"].startswith(base(srv)) for r in weight["resources"]), weight
    check_page(b, shots, "landing")
    # on a phone: Android first, no QR code
    b.size(web_browser.PHONE, web_browser.ANDROID_UA)
    b.open(invite["landing_page"])
    assert b.find_all("#apps details")[0].get_attribute("data-platform") == "android"
    assert b.find_all(".qr") == []
    b.size(web_browser.DESKTOP)
    b.open(invite["landing_page"])

    b.click("a.button.secondary")
    assert b.driver.current_url == f"{base(srv)}/register?{invite['token']}"
    check_page(b, shots, "signup")
    b.fill({"username": "newbie", "password": PASSWORD, "password2": PASSWORD})
    b.submit()
    assert "Your account newbie@localhost is ready." in b.text(), b.text()[:500]
    check_page(b, shots, "signup-done", phone=False)
    assert client.can_login(srv, "newbie@localhost", PASSWORD)
    # the invite is used up: the same neutral page as for junk
    b.open(invite["landing_page"])
    assert "This invite is no longer valid." in b.text()
    check_page(b, shots, "invalid", phone=False)


def test_signup_form_refuses_what_registration_refuses(srv, fresh):
    b = fresh
    invite = srv.api1("create_account", "reserved1")  # restricted to one name: shown fixed
    b.open(f"{base(srv)}/register?{invite['token']}")
    assert "reserved1@localhost" in b.find("main form").text
    assert b.find('input[name="username"]').get_attribute("type") == "hidden"
    b.fill({"password": "short", "password2": "short"})
    b.submit()
    assert b.find(".error").text  # the password policy's reason
    assert not srv.api1("user_exists", "reserved1")
    b.fill({"password": PASSWORD, "password2": PASSWORD + "x"})
    b.submit()
    assert b.find(".error").text == "The two passwords differ."
    # an account invite for anyone cannot take a name that exists
    other = srv.api1("create_account")
    b.open(f"{base(srv)}/register?{other['token']}")
    b.fill({"username": ALICE, "password": PASSWORD, "password2": PASSWORD})
    b.submit()
    assert b.find(".error").text == "This username is already in use."
    assert srv.api1("inspect", other["token"])["state"] == "pending"


def test_password_reset_through_the_web(srv, fresh, shots):
    b = fresh
    srv.create_user("forgetful", PASSWORD)
    invite = srv.api1("create_account_reset", "forgetful")
    b.open(invite["landing_page"])
    assert "This link resets the password of forgetful@localhost." in b.text()
    b.click("a.button.secondary")
    check_page(b, shots, "reset")
    b.fill({"password": "a-brand-new-secret", "password2": "a-brand-new-secret"})
    b.submit()
    assert "The password of forgetful@localhost has been changed." in b.text(), b.text()[:400]
    assert client.can_login(srv, "forgetful@localhost", "a-brand-new-secret")
    assert not client.can_login(srv, "forgetful@localhost", PASSWORD)
    assert srv.api1("inspect", invite["token"])["state"] == "used"


# ---------------------------------------------------------------------------- my invites


def test_my_invites_create_scan_use_revoke(srv, fresh, shots, e2e_base_dir):
    b = fresh
    b.open(base(srv) + "/me")
    check_page(b, shots, "login")
    login(b, srv, ALICE)
    b.click("#create-h ~ form button")
    link = b.find(".card a.link").get_attribute("href")
    assert link.startswith(base(srv) + "?")
    assert b.decode_qr(".card .qr svg", e2e_base_dir / "qr-mine.png") == [link]
    check_page(b, shots, "my-invites-created", phone=False)
    token = link.split("?", 1)[1]
    # bob accepts it from his client (XEP-0379): the invite is used
    result = client.subscribe_with_preauth(srv, jid(BOB), PASSWORD, jid(ALICE), token)
    assert result.got_subscribed, result
    b.open(base(srv) + "/me")
    assert f"used (used by {jid(BOB)})" in b.text(), b.text()
    # another one, revoked from the page
    b.click("#create-h ~ form button")
    second = b.find(".card a.link").get_attribute("href").split("?", 1)[1]
    b.open(base(srv) + "/me")
    rows = [r for r in b.find_all("tbody tr") if r.find_elements("css selector", "form")]
    assert len(rows) == 1
    b.click("tbody tr form button")
    assert srv.api1("inspect", second)["state"] == "revoked"
    assert "revoked" in b.text()
    check_page(b, shots, "my-invites")
    # log out
    b.click('form[action$="/me/logout"] button')
    assert "Log in with your chat address" in b.text()


def test_login_is_throttled_per_account(srv, fresh):
    b = fresh
    for _ in range(5):
        b.open(base(srv) + "/me")
        b.fill({"jid": jid(CAROL), "password": "wrong"})
        b.submit()
        assert "Wrong address or password." in b.text()
    b.fill({"jid": jid(CAROL), "password": PASSWORD})
    b.submit()
    assert "Too many failed attempts" in b.text()
    # another account from the same address still logs in
    login(b, srv, BOB)


# ---------------------------------------------------------------------------- admin page


def test_admin_create_filter_show_revoke(srv, fresh, shots, e2e_base_dir):
    b = fresh
    alice_invite = srv.api1("create_contact", ALICE, True, {"source": jid(ALICE)})
    login(b, srv, ADMIN)
    b.click('nav a[href$="/admin"]')
    assert b.driver.title.startswith("All invites")
    b.fill({"roles": "prosody:registered", "uses": "2", "expires": "2 days", "note": "<b>for the team</b>"})
    b.click('form[action$="/admin/create"] button')
    link = b.find(".card a.link").get_attribute("href")
    assert b.decode_qr(".card .qr svg", e2e_base_dir / "qr-admin.png") == [link]
    token = link.split("?", 1)[1]
    info = srv.api1("inspect", token)
    assert info["audit"]["max_uses"] == 2 and info["audit"]["creator"] == jid(ADMIN)
    # filter: only account invites by admin
    b.open(base(srv) + f"/admin?kind=account&state=pending&creator={jid(ADMIN)}")
    cells = [r.text for r in b.find_all("tbody tr")]
    assert cells and all(jid(ADMIN) in c for c in cells) and any(token[:6] in c for c in cells), cells
    check_page(b, shots, "admin")
    # details: everything `invite show` tells, the note escaped
    b.click(f'a[href$="t={token}"]')
    facts = b.find("dl.facts").text
    assert "<b>for the team</b>" in facts and "prosody:registered" in facts and "2" in facts, facts
    check_page(b, shots, "admin-invite", phone=False)
    # revoke everything alice created
    b.open(base(srv) + "/admin")
    b.fill({"revoke_creator": jid(ALICE)})
    b.click('form[action$="/admin/revoke_by"] button')
    assert re.search(r"Revoked [1-9]\d* invites", b.text()), b.text()[:300]
    assert srv.api1("inspect", alice_invite["token"])["state"] == "revoked"
    # and one from the list
    b.open(base(srv) + "/admin?state=pending")
    b.click(f'form[action$="/admin/revoke"] input[value="{token}"] ~ button')
    assert srv.api1("inspect", token)["state"] == "revoked"


# ---------------------------------------------------------------------------- refusals


def test_forms_without_the_right_csrf_token_are_refused(srv, fresh):
    b = fresh
    invite = srv.api1("create_account")
    b.open(f"{base(srv)}/register?{invite['token']}")
    action = b.find("main form").get_attribute("action")
    for csrf in (None, "0" * 64):
        fields = {"token": invite["token"], "username": "csrfvictim", "password": PASSWORD, "password2": PASSWORD}
        if csrf:
            fields["csrf"] = csrf
        b.post_form(action, fields)
        assert "Form refused" in b.driver.title, b.text()[:300]
    assert not srv.api1("user_exists", "csrfvictim")
    # a logged-in user's form with the token of another session
    login(b, srv, BOB)
    b.post_form(base(srv) + "/me/create", {"csrf": "f" * 64})
    assert "Form refused" in b.driver.title
    # the same POST from outside the browser (no cookies at all)
    req = urllib.request.Request(action, data=f"token={invite['token']}&username=x&password=y&password2=y&csrf=z".encode(),
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403


def test_a_forged_admin_action_by_a_normal_user_is_refused(srv, fresh):
    b = fresh
    victim = srv.api1("create_account")
    login(b, srv, BOB)
    csrf = b.find('input[name="csrf"]').get_attribute("value")  # bob's own, valid token
    b.post_form(base(srv) + "/admin/revoke", {"token": victim["token"], "csrf": csrf})
    assert "Not allowed" in b.driver.title
    b.post_form(base(srv) + "/admin/create", {"kind": "account", "roles": "prosody:admin", "csrf": csrf})
    assert "Not allowed" in b.driver.title
    b.open(base(srv) + "/admin")
    assert "Not allowed" in b.driver.title
    assert srv.api1("inspect", victim["token"])["state"] == "pending"
    assert all(link.get_attribute("href").endswith("/me") for link in b.find_all("nav a"))


def test_zz_login_is_throttled_per_address(srv, fresh):
    """Last: after it this address cannot log in any more."""
    b = fresh
    for n in range(15):  # 5 failures so far from the account test, 20 allowed per address
        b.open(base(srv) + "/me")
        b.fill({"jid": f"nobody{n}@{HOST}", "password": "wrong"})
        b.submit()
        assert "Wrong address or password." in b.text(), n
    b.open(base(srv) + "/me")
    b.fill({"jid": jid(ADMIN), "password": PASSWORD})
    b.submit()
    assert "Too many failed attempts" in b.text()
