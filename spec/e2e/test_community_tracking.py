"""mod_invites_tracking (new in the 2025-04 prosody-modules snapshot that comes with Prosody 13)
on top of our invite modules: every registration made with an invite — in-band, through the
web form, with the invite of an API key — is recorded with the invite's token and source.
"""

from __future__ import annotations

import pytest

import client
import web_client
from community import COMMUNITY_DIR, GOOD_PASSWORD, community_server, token_from

HOST = "localhost"

pytestmark = pytest.mark.only_on("13", reason="mod_invites_tracking is not in the 2023 snapshot that comes with 0.12")


@pytest.fixture(scope="module")
def srv(e2e_base_dir):
    if not (COMMUNITY_DIR / "mod_invites_tracking" / "mod_invites_tracking.lua").is_file():
        pytest.skip(f"mod_invites_tracking is not under {COMMUNITY_DIR}")
    server = community_server(e2e_base_dir / "community-tracking", name="community-tracking", modules=["invites_tracking"])
    server.start()
    yield server
    server.stop()
    server.assert_no_tracebacks()


def tracked(srv, username):
    return srv.api1("keyval_get", "invites_tracking", username)


def test_in_band_registration_is_tracked(srv):
    invite = srv.api1("create_account", None, {"source": "admin@localhost/laptop"})
    assert client.register(srv, "tara", GOOD_PASSWORD, invite["token"], login=False).ok
    assert tracked(srv, "tara") == {"invite_id": invite["token"], "invite_source": "admin@localhost/laptop"}


def test_contact_invite_registration_is_tracked(srv):
    srv.api("create_user", "ivy", GOOD_PASSWORD)
    invite = srv.api1("create_contact", "ivy", True, {"source": "ivy@localhost"})
    assert client.register(srv, "tom", GOOD_PASSWORD, invite["token"], login=False).ok
    assert tracked(srv, "tom") == {"invite_id": invite["token"], "invite_source": "ivy@localhost"}


def test_web_registration_is_tracked(srv):
    web = web_client.WebClient(srv)
    token = token_from(srv.api1("create_account", None, {"source": "api/token/signup"})["uri"])
    form = web.get(f"/register?t={token}")
    assert form.status == 200, (form.status, form.text[:300])
    done = web.submit(form, {"user": "una", "password": GOOD_PASSWORD})
    assert done.status == 200 and "You have created an account" in done.text, (done.status, done.text[:300])
    assert srv.api1("user_exists", "una")
    assert tracked(srv, "una") == {"invite_id": token, "invite_source": "api/token/signup"}

