"""mod_invites_page and mod_register_apps (Debian's prosody-modules, loaded from their own folders)
on top of our invite modules: every way of creating an invite yields a landing page, the page and
the per-app setup page show the invite, junk tokens get the "expired" page, and a real browser
renders it styled with a working QR code.

Hosts of the one server these tests share:
  localhost      no URL options: the server's HTTP module tells the page URL (from its listening port)
  ext.localhost  http_external_url, as behind a reverse proxy: prosodyctl can tell the URL too
  page.localhost an explicit `invites_page` template (what stock's prosodyctl needs)
"""

from __future__ import annotations

import re
import urllib.parse

import pytest

import client
import web_client
from community import GOOD_PASSWORD, SITE_NAME, check_module_sources, module_scoped_server, token_from
from prosody_ctl import last_line
from prosody_host import prosody_version

HOST = "localhost"
EXT = "ext.localhost"
EXTERNAL_URL = "https://invites.example.test/"
PAGE = "page.localhost"
PAGE_TEMPLATE = "https://join.example.test/i/{invite.token}?h={host}"
ADMIN, ALICE = "admin", "alice"


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    yield from module_scoped_server(
        e2e_base_dir, "community-page",
        hosts={
            HOST: {"allow_user_invites": True},
            EXT: {"http_external_url": EXTERNAL_URL},
            PAGE: {"invites_page": PAGE_TEMPLATE},
        },
        options={"admins": [f"{ADMIN}@{HOST}"]},
    )


@pytest.fixture(scope="module")
def users(srv):
    srv.create_user(ADMIN, GOOD_PASSWORD)
    srv.create_user(ALICE, GOOD_PASSWORD)
    return {"admin": f"{ADMIN}@{HOST}", "alice": f"{ALICE}@{HOST}"}


@pytest.fixture
def web(srv):
    return web_client.WebClient(srv, aliases={"invites.example.test": EXT})


def page_url(srv, token, host=HOST):
    """Where the HTTP module says the page is on a host without URL options."""
    return f"http://{host}:{srv.http_port}/invites_page?{token}"


def assert_invite_page(resp, invite_uri, *, inviter=None):
    """resp is mod_invites_page's page for the invite with this xmpp: URI."""
    token = token_from(invite_uri)
    assert resp.status == 200, (resp.status, resp.text[:500])
    assert resp.header("content-type", "").startswith("text/html"), resp.headers
    page = resp.page
    assert page.title == f"Invite to {SITE_NAME}", page.title
    assert "Invite expired" not in page.text, page.text[:500]
    # The xmpp: URI: <link rel=alternate>, the Link header, and in the Play Store referrer links
    assert page.alternate() == invite_uri
    assert resp.header("link") == f'<{invite_uri}>; rel="alternate"'
    assert any(referrer_of(href) == invite_uri for href in page.links()), page.links()
    assert f"register?t={token}" in page.links()  # "register an account manually"
    if inviter:
        assert f"You have been invited to chat with {inviter} on {SITE_NAME}" in page.text, page.text[:400]
    else:
        assert f"You have been invited to chat on {SITE_NAME}" in page.text, page.text[:400]
    return page


def referrer_of(href):
    """The Play Store install-referrer a magic link relays to the app (the xmpp: URI)."""
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query).get("referrer")
    return values[0] if values else None


def assert_expired_page(resp):
    assert resp.status == 200, (resp.status, resp.text[:300])
    assert "Invite expired" in resp.page.text, resp.page.text[:300]
    assert resp.header("link") is None
    assert "xmpp:" not in resp.text


# ---------------------------------------------------------------------------- set-up


def test_community_modules_come_from_debians_folders(srv):
    for host in (HOST, EXT, PAGE):
        check_module_sources(srv, host)


# ---------------------------------------------------------------------------- every creation path


def test_invite_from_the_api_has_the_landing_page_the_http_module_tells(srv, web):
    invite = srv.api1("create_account")
    assert invite["landing_page"] == page_url(srv, invite["token"])
    # stored with the record, as consumers (Snikket's admin API, ...) read it from there
    assert srv.api1("store_get", None, invite["token"])["landing_page"] == invite["landing_page"]
    assert_invite_page(web.get(invite["landing_page"]), invite["uri"])


def test_admin_shell_invites_print_the_landing_page(srv, web, users):
    res = srv.shell(f'invite:create_account("{HOST}")')
    assert res.ok, res
    token = token_from(res.text)
    assert res.text == page_url(srv, token)
    assert_invite_page(web.get(res.text), f"xmpp:{HOST}?register;preauth={token}")

    res = srv.shell(f'invite:create_contact("{users["alice"]}", true)')
    assert res.ok, res
    token = token_from(res.text)
    assert res.text == page_url(srv, token)
    assert_invite_page(web.get(res.text), f"xmpp:{users['alice']}?roster;preauth={token};ibr=y", inviter=ALICE)

    # A contact-only invite has no page (mod_invites_page only serves invites that allow registration)
    res = srv.shell(f'invite:create_contact("{users["alice"]}", false)')
    assert res.ok, res
    assert re.fullmatch(rf"xmpp:{re.escape(users['alice'])}\?roster;preauth=[A-Za-z0-9_-]+", res.text), res.text


def test_adhoc_create_account_returns_the_landing_url(srv, web, users):
    result = client.adhoc(srv, users["admin"], GOOD_PASSWORD, "urn:xmpp:invite#create-account", {})
    assert result.ok, result.xml
    uri, landing = result.form.value("uri"), result.form.value("landing-url")
    token = token_from(uri)
    assert landing == page_url(srv, token)
    assert srv.api1("store_get", None, token)["landing_page"] == landing
    assert_invite_page(web.get(landing), uri)


def test_adhoc_contact_invite_returns_the_landing_url_naming_the_inviter(srv, web, users):
    result = client.adhoc(srv, users["alice"], GOOD_PASSWORD, "urn:xmpp:invite#invite", {})
    assert result.ok, result.xml
    uri, landing = result.form.value("uri"), result.form.value("landing-url")
    assert uri.startswith(f"xmpp:{users['alice']}?roster;preauth=") and uri.endswith(";ibr=y"), uri
    assert landing == page_url(srv, token_from(uri))
    assert_invite_page(web.get(landing), uri, inviter=ALICE)


@pytest.mark.parametrize("flags", [(), ("--admin",), ("--reset", ALICE)], ids=["plain", "admin", "reset"])
def test_prosodyctl_generate_prints_the_landing_page_of_the_invites_page_option(srv, web, users, flags):
    res = srv.prosodyctl("mod_invites", "generate", PAGE, *flags)
    assert res.returncode == 0, res
    printed = last_line(res.stdout)
    m = re.fullmatch(rf"https://join\.example\.test/i/([A-Za-z0-9_-]+)\?h={re.escape(PAGE)}", printed)
    assert m, printed
    record = srv.api1("store_get", None, m.group(1), host=PAGE)
    assert record["landing_page"] == printed
    # the operator's template points at a proxy; the page itself is served here
    assert_invite_page(web.get(f"http://{PAGE}/invites_page?{m.group(1)}"), record["uri"])


@pytest.mark.deliberate_fix("prosodyctl-landing-page")
@pytest.mark.parametrize("flags", [(), ("--reset", ALICE)], ids=["plain", "reset"])
def test_prosodyctl_generate_prints_the_landing_page_from_http_external_url(srv, web, flags):
    """Stock prints the bare URI here: mod_invites_page computes its URL before mod_http is loaded
    under prosodyctl (consumers.md section 6, bug 6). Ours loads mod_http first."""
    res = srv.prosodyctl("mod_invites", "generate", EXT, *flags)
    assert res.returncode == 0, res
    printed = last_line(res.stdout)
    m = re.fullmatch(r"https://invites\.example\.test/invites_page\?([A-Za-z0-9_-]+)", printed)
    assert m, f"expected the landing page under {EXTERNAL_URL}, got {printed!r}"
    record = srv.api1("store_get", None, m.group(1), host=EXT)
    assert record["landing_page"] == printed
    # the same URL the running server gives its own invites
    assert srv.api1("create_account", host=EXT)["landing_page"].startswith(f"{EXTERNAL_URL}invites_page?")
    assert_invite_page(web.get(printed), record["uri"])


def test_prosodyctl_generate_without_a_known_url_prints_the_uri(srv, web):
    """Without http_external_url or invites_page, 0.12's prosodyctl has no port to tell the URL
    from (stock and ours alike): it prints the xmpp: URI, and the invite still works on the page.
    13's mod_http derives the URL from http_ports, so there the page URL is printed (stock 13 has
    no `generate` any more)."""
    res = srv.prosodyctl("mod_invites", "generate", HOST)
    assert res.returncode == 0, res
    link = last_line(res.stdout)
    token = token_from(link)
    uri = f"xmpp:{HOST}?register;preauth={token}"
    if prosody_version() < (13,):
        assert link == uri
        assert "landing_page" not in srv.api1("store_get", None, token)
    else:
        assert link == srv.api1("store_get", None, token)["landing_page"] == f"http://{HOST}:{srv.http_port}/invites_page?{token}"
    assert_invite_page(web.get(page_url(srv, token)), uri)


# ---------------------------------------------------------------------------- the pages


@pytest.mark.deliberate_fix("validated-invite-fields")
def test_the_invite_the_page_modules_get_carries_jid_expires_and_inviter(srv, users):
    """mod_invites_page and mod_invites_register_web pass get()'s invite to their templates
    (`jid`, `inviter`, ...); stock's has no jid, expires or landing_page (README "API for other modules")."""
    cases = [
        (srv.api1("create_account"), None),
        (srv.api1("create_account", "reserved"), None),
        (srv.api1("create_contact", ALICE, True), ALICE),
        (srv.api1("create_account_reset", ALICE), None),
    ]
    for record, inviter in cases:
        got = srv.api1("get", record["token"])
        assert got, record
        assert got.get("inviter") == inviter, got
        for key in ("jid", "expires", "created_at", "landing_page", "uri", "type"):
            assert got.get(key) == record[key], (key, got, record)


def test_landing_page_assets_are_served(srv, web):
    """Styles, scripts (jQuery, Bootstrap, QR code, platform detection) and images the page loads
    all resolve: mod_http_libjs serves /share/ from Debian's libjs-bootstrap4 and libjs-jquery."""
    invite = srv.api1("create_account")
    page = web.get(invite["landing_page"]).page
    assets = page.assets()
    assert "/share/bootstrap4/css/bootstrap.min.css" in assets
    assert "/share/bootstrap4/js/bootstrap.min.js" in assets and "/share/jquery/jquery.min.js" in assets
    for asset in assets:
        url = urllib.parse.urljoin(invite["landing_page"], asset)
        if urllib.parse.urlsplit(url).hostname != HOST:
            continue  # app store badges
        resp = web.get(url)
        assert resp.status == 200 and resp.body, (url, resp.status)
    assert web.get("/share/bootstrap4/css/bootstrap.min.css").header("content-type", "").startswith("text/css")


def test_app_cards_lead_to_setup_page_store_or_web_registration(srv, web):
    invite = srv.api1("create_account")
    token, uri = invite["token"], invite["uri"]
    page = web.get(invite["landing_page"]).page
    proceed = {card.find("h5").text: card.find("a", class_="btn").get("href")
               for card in page.find_all("div", class_="client-card")}
    base = invite["landing_page"].split("?")[0]
    # supports_preauth_uri: the setup page; magic links: the store, relaying the URI; else: web registration
    assert proceed["Siskin IM"] == f"{base}/setup/siskin-im?{token}"
    assert proceed["Conversations"].startswith("https://play.google.com/") and referrer_of(proceed["Conversations"]) == uri
    assert proceed["Dino"] == f"register?t={token}&c=dino"


def test_setup_page_for_an_app_shows_the_invite_button(srv, web, users):
    invite = srv.api1("create_contact", ALICE, True)
    landing = web.get(invite["landing_page"])
    card = next(c for c in landing.page.find_all("div", class_="client-card") if "Siskin IM" in c.text)
    setup = web.get(urllib.parse.urljoin(landing.url, card.find("a", class_="btn").get("href")))
    assert setup.status == 200
    page = setup.page
    assert f"Join {SITE_NAME} with Siskin IM" in page.text
    assert page.by_id("uri-cta").get("href") == invite["uri"]
    assert "Accept invite using Siskin IM" in page.by_id("uri-cta").text
    assert any(href.startswith("https://apps.apple.com/") for href in page.links())


@pytest.mark.parametrize("query", [
    "", "nosuchtokenAAAAAAAAAAAA", "t=abc&c=conversations", "x" * 5000, "%00", "j%C3%B6ns", "%3Cscript%3E",
    "a;b=c&d", "../../etc/passwd",
], ids=["empty", "unknown", "register-query", "5000", "nul", "non-ascii", "markup", "separators", "path"])
def test_unknown_or_junk_token_shows_the_expired_page(srv, web, query):
    assert_expired_page(web.get(f"/invites_page?{query}"))
    assert_expired_page(web.get(f"/invites_page/setup/siskin-im?{query}"))


def test_used_and_revoked_invites_show_the_expired_page(srv, web):
    used = srv.api1("create_account")
    result = client.register(srv, "pageuser", GOOD_PASSWORD, used["token"])
    assert result.ok and result.logged_in, result
    assert_expired_page(web.get(used["landing_page"]))

    revoked = srv.api1("create_account")
    assert srv.api1("delete_account_invite", revoked["token"]) is True
    assert_expired_page(web.get(revoked["landing_page"]))


# ---------------------------------------------------------------------------- a real browser


def test_landing_page_in_headless_chromium(srv, users, tmp):
    """Renders a fresh invite's page in Chromium: the screenshot is saved in the test's folder,
    the page shows the invite (its xmpp: link and web-registration link), Bootstrap styles it, and
    the QR button opens a code for the page's own URL. The app's setup page offers the xmpp: link
    as its button."""
    if not web_client.chromium_binary():
        pytest.skip("chromium is not installed (apt-get install chromium, or make deps)")
    invite = srv.api1("create_contact", ALICE, True)
    url, uri, token = invite["landing_page"], invite["uri"], invite["token"]

    shot = web_client.screenshot(url, tmp / "landing.png", tmp)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"landing page screenshot: {shot}")

    with web_client.Browser(tmp) as browser:
        tab = browser.open(url)
        seen = tab.evaluate("""(async () => {
            const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
            const style = (el) => getComputedStyle(el);
            const out = {
                title: document.title,
                text: document.body.innerText,
                alternate: document.querySelector('link[rel=alternate]').getAttribute('href'),
                links: Array.from(document.querySelectorAll('a[href]')).map((a) => a.href),
                bootstrap_css: style(document.querySelector('.btn-primary')).backgroundColor,
                qr_button: style(document.getElementById('qr-button-container')).display,
            };
            document.getElementById('qr-modal-show').click();
            const modal = document.getElementById('qr-modal');
            for (let i = 0; i < 100 && !(modal.classList.contains('show')
                    && document.querySelector('#qr-invite-page img, #qr-invite-page canvas')); i++) {
                await sleep(50);
            }
            await sleep(400);  // the fade-in
            out.modal = modal.classList.contains('show') && style(modal).display === 'block';
            out.qr_text = document.getElementById('qr-invite-page').getAttribute('title');
            return out;
        })()""")
        tab.screenshot(tmp / "landing-qr.png")

        assert seen["title"] == f"Invite to {SITE_NAME}"
        assert f"You have been invited to chat with {ALICE} on {SITE_NAME}" in seen["text"]
        assert seen["alternate"] == uri
        assert f"http://{HOST}:{srv.http_port}/register?t={token}" in seen["links"]
        assert any(referrer_of(link) == uri for link in seen["links"])
        assert seen["bootstrap_css"] == "rgb(0, 123, 255)", "Bootstrap's stylesheet did not apply"
        assert seen["qr_button"] == "block", "the QR button is hidden: jQuery or qrcode.min.js did not load"
        assert seen["modal"], "the QR modal did not open: Bootstrap's JavaScript did not load"
        assert seen["qr_text"] == url

        tab.navigate(f"{url.split('?')[0]}/setup/siskin-im?{token}")
        cta = tab.evaluate("(() => { const a = document.getElementById('uri-cta');"
                           " return {href: a.getAttribute('href'), visible: a.offsetWidth > 0}; })()")
        assert cta == {"href": uri, "visible": True}
        tab.screenshot(tmp / "setup.png")
