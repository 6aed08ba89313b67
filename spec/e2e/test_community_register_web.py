"""mod_invites_register_web (Debian's prosody-modules) on top of our invite modules, driven as a
browser drives it: from the landing page's link to the form, posted back to where the form points.

The module depends on a `password_policy` module that Debian lacks; ours (lua/mod_password_policy.lua,
shipped in the plugin directory) provides it. Web registration fires `user-registering` with the
invite on the event, so the registration rules of mod_invites_register apply to it as to in-band
registration: a username-restricted invite registers that name only, a reset invite never creates
an account, a used invite is refused.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET

import pytest

import client
import web_client
from community import GOOD_PASSWORD, SITE_NAME, check_module_sources, module_scoped_server, probe_events
from online_client import OnlineClient
from prosody_host import default_impl, is_stock

HOST = "localhost"
STRICT = "strict.localhost"  # password_policy = { length = 12 }


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    yield from module_scoped_server(
        e2e_base_dir, "community-register-web",
        hosts={HOST: {}, STRICT: {"password_policy": {"length": 12}}},
        modules=("user_account_management",),  # in-band password changes
    )


@pytest.fixture
def web(srv):
    return web_client.WebClient(srv)


def register_form(web, invite, app=None):
    """Open the invite's landing page and follow its link to web registration (for `app`, the
    app card's "Select" button; otherwise "register an account manually")."""
    landing = web.get(invite["landing_page"])
    assert landing.status == 200, landing
    if app:
        card = next(c for c in landing.page.find_all("div", class_="client-card") if c.find("h5").text == app)
        href = card.find("a", class_="btn").get("href")
    else:
        href = f"register?t={invite['token']}"
        assert href in landing.page.links(), landing.page.links()
    form = web.get(urllib.parse.urljoin(landing.url, href))
    assert form.status == 200, (form.status, form.text[:300])
    assert form.page.title == SITE_NAME and f"Register on {SITE_NAME}" in form.page.text
    assert form.page.forms()[0].fields["token"] == invite["token"]
    return form


def exists(srv, username, host=HOST):
    return srv.api1("user_exists", username, host=host)


def assert_created(resp, username, host=HOST):
    assert resp.status == 200, (resp.status, resp.text[:300])
    assert f"You have created an account on {SITE_NAME}" in resp.page.text, resp.page.text[:600]
    assert resp.header("cache-control") == "no-cache, no-store, must-revalidate"
    assert any(i.get("value") == f"{username}@{host}" for i in resp.page.find_all("input"))


def assert_not_created(resp):
    assert resp.status in (200, 303), (resp.status, resp.text[:300])
    assert "You have created an account" not in resp.text


def assert_sent_to_expired_page(web, resp):
    """An invalid invite on /register: 303 to the landing page, which says the invite expired."""
    assert resp.status == 303, (resp.status, resp.text[:300])
    assert urllib.parse.urlsplit(resp.location).path == "/invites_page", resp.location
    assert "Invite expired" in web.follow(resp).page.text


# ---------------------------------------------------------------------------- the flow


def test_web_registration_with_an_invite(srv, web):
    check_module_sources(srv)
    invite = srv.api1("create_account")
    form = register_form(web, invite)
    password_input = form.page.find("input", name="password")
    assert password_input.get("minlength") == "8"  # from password_policy.get_policy()
    assert f"@{HOST}" in form.page.text

    done = web.submit(form, {"user": "webuser", "password": GOOD_PASSWORD})
    assert_created(done, "webuser")
    assert exists(srv, "webuser")
    assert client.can_login(srv, f"webuser@{HOST}", GOOD_PASSWORD)

    # used up: the store, the landing page and the form all say so
    assert srv.api1("store_get", None, invite["token"]) is None
    assert "Invite expired" in web.get(invite["landing_page"]).page.text
    assert_sent_to_expired_page(web, web.get(form.url))


def test_web_registration_through_an_app_card_shows_its_setup_steps(srv, web):
    invite = srv.api1("create_account")
    form = register_form(web, invite, app="Dino")
    assert form.page.forms()[0].fields["app_id"] == "dino"
    done = web.submit(form, {"user": "dinouser", "password": GOOD_PASSWORD})
    assert_created(done, "dinouser")
    assert "You can now set up Dino and connect it to your new account." in done.page.text
    assert exists(srv, "dinouser")


def test_contact_invite_on_the_web_befriends_the_inviter(srv, web):
    srv.create_user("carol", GOOD_PASSWORD)
    invite = srv.api1("create_contact", "carol", True)
    form = register_form(web, invite)
    assert "communicate with carol and other people" in form.page.text  # the inviter, in the template
    done = web.submit(form, {"user": "dave", "password": GOOD_PASSWORD})
    assert_created(done, "dave")
    assert srv.api1("roster", "dave").get(f"carol@{HOST}", {}).get("subscription") == "both"
    assert srv.api1("roster", "carol").get(f"dave@{HOST}", {}).get("subscription") == "both"


@pytest.mark.skipif(is_stock(default_impl()), reason="telling the inviter is this project's feature")
def test_web_registration_tells_the_inviter(srv, web):
    """README "Telling people": a registration on the web tells the inviter too (offline here: at
    the next login)."""
    srv.create_user("hank", GOOD_PASSWORD)
    invite = srv.api1("create_contact", "hank", True)
    done = web.submit(register_form(web, invite), {"user": "gina", "password": GOOD_PASSWORD})
    assert_created(done, "gina")
    with OnlineClient(srv, f"hank@{HOST}", GOOD_PASSWORD) as hank:
        told = hank.wait_for(lambda el: el.find("{urn:x-prosody-invites:notify}invite-used") is not None)
        assert told is not None, hank.stanzas
        assert told.findtext("{jabber:client}body") == f"gina@{HOST} joined with your invite. Say hello!"


@pytest.mark.deliberate_fix("validated-invite-fields")
def test_web_registration_hands_on_an_invite_with_jid_expires_and_inviter(srv, web):
    """The invite mod_invites_register_web gets from get() and passes through user-registering and
    user-registered carries jid, expires and inviter (stock's has no jid or expires)."""
    srv.create_user("erin", GOOD_PASSWORD)
    invite = srv.api1("create_contact", "erin", True)
    done = web.submit(register_form(web, invite), {"user": "frank", "password": GOOD_PASSWORD})
    assert_created(done, "frank")
    events = probe_events(web, username="frank")
    assert [e["event"] for e in events] == ["user-registering", "user-registered"], events
    assert events[1]["source"] == "mod_invites_register_web"
    for event in events:
        seen = event["invite"]
        assert seen.get("token") == invite["token"] and seen.get("inviter") == "erin", seen
        assert seen.get("jid") == invite["jid"] == f"erin@{HOST}", seen
        assert seen.get("expires") == invite["expires"], seen


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("password, message", [
    ("short-1", "Password is too short (minimum 8 characters)"),
    ("my-name-is-policyuser", "Password must not include your username"),
], ids=["short", "contains-username"])
def test_web_form_enforces_the_password_policy(srv, web, password, message):
    invite = srv.api1("create_account")
    resp = web.submit(register_form(web, invite), {"user": "policyuser", "password": password})
    assert_not_created(resp)
    assert message in resp.page.text
    assert not exists(srv, "policyuser")
    assert srv.api1("store_get", None, invite["token"]) is not None  # not used up


def test_password_policy_option_is_honoured(srv, web):
    invite = srv.api1("create_account", host=STRICT)
    form = register_form(web, invite)
    assert form.page.find("input", name="password").get("minlength") == "12"
    resp = web.submit(form, {"user": "strictuser", "password": "ten-chars!"})
    assert "Password is too short (minimum 12 characters)" in resp.page.text
    assert_created(web.submit(form, {"user": "strictuser", "password": GOOD_PASSWORD}), "strictuser", STRICT)


def test_web_form_refuses_a_taken_username(srv, web):
    srv.create_user("taken", GOOD_PASSWORD)
    invite = srv.api1("create_account")
    resp = web.submit(register_form(web, invite), {"user": "taken", "password": "another-password-1"})
    assert_not_created(resp)
    assert "This username is already in use." in resp.page.text
    assert client.can_login(srv, f"taken@{HOST}", GOOD_PASSWORD)
    assert srv.api1("store_get", None, invite["token"]) is not None


def test_used_or_revoked_invite_is_refused_on_the_web(srv, web):
    invite = srv.api1("create_account")
    form = register_form(web, invite)
    assert_created(web.submit(form, {"user": "firstuser", "password": GOOD_PASSWORD}), "firstuser")
    # the same form posted again (back button, second tab): no second account
    again = web.submit(form, {"user": "seconduser", "password": GOOD_PASSWORD})
    assert_sent_to_expired_page(web, again)
    assert not exists(srv, "seconduser")

    # used in-band first, then on the web
    invite = srv.api1("create_account")
    form = register_form(web, invite)
    assert client.register(srv, "ibruser", GOOD_PASSWORD, invite["token"]).ok
    assert_sent_to_expired_page(web, web.submit(form, {"user": "lateuser", "password": GOOD_PASSWORD}))
    assert not exists(srv, "lateuser")

    invite = srv.api1("create_account")
    form = register_form(web, invite)
    srv.api("delete_account_invite", invite["token"])
    assert_sent_to_expired_page(web, web.submit(form, {"user": "revokeduser", "password": GOOD_PASSWORD}))
    assert not exists(srv, "revokeduser")


@pytest.mark.parametrize("query", ["", "t=", "t=nosuchtokenAAAAAAAAAAAA&c=dino", "t=%00", "c=dino"],
                         ids=["none", "empty", "unknown", "nul", "app-only"])
def test_register_page_with_a_bad_token_goes_to_the_expired_page(srv, web, query):
    assert_sent_to_expired_page(web, web.get(f"/register?{query}" if query else "/register"))


@pytest.mark.deliberate_fix(2)
def test_restricted_invite_registers_only_its_username_on_the_web(srv, web):
    invite = srv.api1("create_account", "bob")
    form = register_form(web, invite)
    resp = web.submit(form, {"user": "eve", "password": GOOD_PASSWORD})
    assert_not_created(resp)
    assert "Registration error" in resp.page.text, resp.page.text[:400]
    assert not exists(srv, "eve"), "an invite for bob registered eve"
    assert srv.api1("store_get", None, invite["token"]) is not None
    assert_created(web.submit(form, {"user": "bob", "password": GOOD_PASSWORD}), "bob")


@pytest.mark.deliberate_fix(3)
def test_reset_invite_on_the_web_resets_only_its_account(srv, web):
    """A reset invite never creates an account. The community module cannot reset a password (it
    stops at "already in use" and never looks at allow_reset), so the reset happens in-band."""
    srv.create_user("resetme", GOOD_PASSWORD)
    invite = srv.api1("create_account_reset", "resetme")
    form = register_form(web, invite)

    resp = web.submit(form, {"user": "zed", "password": GOOD_PASSWORD})
    assert_not_created(resp)
    assert "Registration error" in resp.page.text, resp.page.text[:400]
    assert not exists(srv, "zed"), "a reset invite for resetme created zed"

    resp = web.submit(form, {"user": "resetme", "password": "new-password-42"})
    assert_not_created(resp)
    assert "This username is already in use." in resp.page.text
    assert client.can_login(srv, f"resetme@{HOST}", GOOD_PASSWORD)

    # still valid for its purpose: the client resets the password in-band
    result = client.register(srv, "resetme", "new-password-42", invite["token"])
    assert result.registration and result.logged_in, result
    assert not client.can_login(srv, f"resetme@{HOST}", GOOD_PASSWORD)
    assert srv.api1("store_get", None, invite["token"]) is None


# ---------------------------------------------------------------------------- our mod_password_policy


def test_password_policy_applies_to_in_band_registration_and_password_changes(srv):
    invite = srv.api1("create_account")
    result = client.register(srv, "ibrpolicy", "short", invite["token"], login=False)
    assert result.preauth and not result.registration, result
    assert result.registration.condition == "not-acceptable", result.registration
    assert result.registration.text == "Password is too short (minimum 8 characters)"
    assert not exists(srv, "ibrpolicy")
    assert srv.api1("store_get", None, invite["token"]) is not None

    assert client.register(srv, "ibrpolicy", GOOD_PASSWORD, invite["token"]).logged_in

    with OnlineClient(srv, f"ibrpolicy@{HOST}", GOOD_PASSWORD) as user:
        reply = user.iq("set", None, "<query xmlns='jabber:iq:register'>"
                        "<username>ibrpolicy</username><password>tiny</password></query>")
        assert reply.get("type") == "error", ET.tostring(reply)
        reply = user.iq("set", None, "<query xmlns='jabber:iq:register'>"
                        "<username>ibrpolicy</username><password>a-longer-password</password></query>")
        assert reply.get("type") == "result"
    assert client.can_login(srv, f"ibrpolicy@{HOST}", "a-longer-password")
