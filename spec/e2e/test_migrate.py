"""The storage layouts (README "Storage layouts" and "Upgrading and removing"): one record per
invite by default, the stock layout on request, invites moved between them at start, on a miss
and by `prosodyctl mod_invites migrate HOST --to stock|records` — which survives kill -9 and
leaves what the stock modules read and use.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import client
from prosody_host import prosodyctl_bin

HOST = "localhost"
PER_INVITE = {"invites_storage_layout": "records"}
STOCK = {"invites_storage_layout": "stock"}


def entry(srv, token):
    return (srv.api1("keyval_get", "invites", token) or {}).get("invite")


def stock_record(srv, token):
    return srv.api1("stock_get", None, token)


def data_files(srv, store):
    return list((srv.data_dir / HOST / store).glob("*.dat"))


def stock_host_map(srv):
    return srv.api1("keyval_get", "invite_token", None) or {}


def stock_host_file(srv):
    """The stock layout's host-level map on internal storage (read with the server stopped)."""
    return srv.data_dir / HOST / "invite_token.dat"


def test_each_invite_is_a_record_of_its_own(make_server):
    srv = make_server(options=PER_INVITE)
    srv.api("create_user", "alice", "pw-alice")
    account = srv.api1("create_account")
    contact = srv.api1("create_contact", "alice", True)
    named = srv.api1("create_account", "nadia")
    for invite in (account, contact, named):
        assert entry(srv, invite["token"])["record"]["token"] == invite["token"]
        assert stock_record(srv, invite["token"]) is None, "nothing in the one host-level map"
    assert entry(srv, contact["token"])["kind"] == "account-and-contact"
    assert srv.api1("stock_get", "alice", contact["token"]) == contact["expires"], "stock's user-level entry"
    assert srv.api1("keyval_get", "invites_by_name", "nadia") == {named["token"]: named["expires"]}
    assert len(data_files(srv, "invites")) == 3, "one file per invite"

    assert client.register(srv, "newbie", "pw-newbie", account["token"]).ok
    used = entry(srv, account["token"])
    assert "record" not in used, "the invite is gone"
    assert [u["account"] for u in used["uses"]] == ["newbie@localhost"], "its audit record stays"
    assert srv.api1("inspect", account["token"])["state"] == "used"
    assert not client.register(srv, "again", "pw", account["token"]).ok

    assert client.register(srv, "nadia", "pw-nadia", named["token"]).ok
    assert not srv.api1("keyval_get", "invites_by_name", "nadia"), "the name index keeps pending invites only"


def test_invites_in_the_other_layout_are_moved_at_start(make_server):
    srv = make_server(options=STOCK)
    srv.api("create_user", "bob", "pw-bob")
    account = srv.api1("create_account")
    contact = srv.api1("create_contact", "bob", True)
    used = srv.api1("create_account")
    assert client.register(srv, "early", "pw", used["token"]).ok
    assert stock_record(srv, account["token"])["token"] == account["token"]
    assert entry(srv, account["token"]) is None

    srv.restart(options=PER_INVITE)
    assert stock_record(srv, account["token"]) is None
    assert entry(srv, account["token"])["record"]["token"] == account["token"]
    assert [u["account"] for u in entry(srv, used["token"])["uses"]] == ["early@localhost"], "audit records move too"
    assert srv.api1("inspect", used["token"])["state"] == "used"
    assert client.register(srv, "later", "pw", account["token"]).ok
    assert client.register(srv, "cara", "pw-cara", contact["token"]).ok
    assert client.roster(srv, "cara@localhost", "pw-cara")["bob@localhost"]["subscription"] == "both"

    again = srv.api1("create_account")
    srv.restart(options=STOCK)  # and back, by the option alone
    assert stock_record(srv, again["token"])["token"] == again["token"]
    assert entry(srv, again["token"]) is None
    assert srv.api1("inspect", account["token"])["state"] == "used"
    assert client.register(srv, "last", "pw", again["token"]).ok
    assert not client.register(srv, "twice", "pw", account["token"]).ok


def test_an_invite_written_in_the_stock_layout_behind_the_servers_back_works_once(make_server):
    """What an older prosodyctl (or the stock one) writes while the server runs."""
    srv = make_server(options=PER_INVITE)
    template = srv.api1("create_account")
    token = "writtenBehindTheBackAAAA"
    planted = dict(template, token=token, uri=f"xmpp:{HOST}?register;preauth={token}")
    srv.api("stock_set", None, token, planted)
    assert client.register(srv, "sneaky", "pw", token).ok
    assert stock_record(srv, token) is None, "moved over, then used"
    assert not client.register(srv, "twice", "pw", token).ok


def killed_midway(srv, to: str, started) -> None:
    """Runs `prosodyctl mod_invites migrate HOST --to TO` and kills it (SIGKILL, its whole process
    group) as soon as started() says it wrote something."""
    proc = subprocess.Popen([prosodyctl_bin(), "--config", str(srv.config_path), "mod_invites", "migrate", HOST,
                             "--to", to], cwd=srv.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while not started() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def migrate(srv, to: str) -> dict:
    res = srv.prosodyctl("mod_invites", "migrate", HOST, "--to", to)
    assert res.returncode == 0, res
    m = re.search(r"Moved (\d+) pending invites to the \w+ layout, skipped (\d+) as expired, (\d+) already there, "
                  r"(\d+) ended", res.stdout)
    assert m, res
    return dict(zip(("moved", "expired", "already", "ended"), map(int, m.groups())))


def test_migrate_to_stock_and_back_survives_kill_9(make_server):
    n = 3000
    srv = make_server(options=PER_INVITE)
    srv.api("create_user", "bob", "pw-bob")
    tokens = srv.api1("create_many", n)
    used, revoked, expired = tokens[:3]
    assert client.register(srv, "used1", "pw", used).ok
    assert srv.api("delete_account_invite", revoked) == [True]
    old = srv.api1("store_get", None, expired)
    srv.api("store_set", None, expired, dict(old, expires=int(time.time()) - 7200))
    contact = srv.api1("create_contact", "bob", False)["token"]  # contact-only: stock's user level
    pending = set(tokens[3:])
    srv.stop()

    killed_midway(srv, "stock", lambda: stock_host_file(srv).exists())
    assert data_files(srv, "invites") and stock_host_file(srv).exists(), "interrupted half-way"
    counts = migrate(srv, "stock")
    assert counts["moved"] + counts["already"] >= len(pending) and counts["expired"] == 1, counts
    assert not data_files(srv, "invites")
    again = migrate(srv, "stock")
    assert (again["moved"], again["already"]) == (0, len(pending)), "idempotent"

    srv.restart(impl="stock")
    assert set(stock_host_map(srv)) == pending, "every pending invite, no used, revoked or expired one"
    stock_used = sorted(pending)[0]
    assert client.register(srv, "onstock", "pw", stock_used).ok
    assert not client.register(srv, "onstock2", "pw", stock_used).ok
    assert srv.api1("stock_get", "bob", contact) is not None
    srv.stop()

    srv.reconfigure(impl="ours")
    killed_midway(srv, "records", lambda: bool(data_files(srv, "invites")))
    assert stock_host_file(srv).exists(), "interrupted half-way"
    counts = migrate(srv, "records")
    assert counts["moved"] + counts["already"] == len(pending) - 1, counts
    assert not stock_host_file(srv).exists()
    srv.start()
    assert set(srv.api1("store_all", None)) == pending - {stock_used}
    assert [u["account"] for u in entry(srv, used)["uses"]] == ["used1@localhost"], "audit kept both ways"
    assert srv.api1("inspect", revoked)["state"] == "revoked"
    for token in (used, revoked, expired, stock_used):
        assert not client.register(srv, "revived" + token[:4].lower(), "pw", token).ok, token
    assert client.register(srv, "back", "pw", sorted(pending)[1]).ok
