"""PostgreSQL specifics: the invites really are rows in PostgreSQL, and the purge copes with many
rows. Collected only when $E2E_POSTGRES names a server (the PostgreSQL tiers of
tools/run-tests.py); the rest of the PostgreSQL tiers' tests are the ordinary suites run with
storage = "sql" on PostgreSQL (see tools/run-tests.py, POSTGRES_TESTS).
"""

from __future__ import annotations

import json

import postgres
from prosody_config import postgres_conninfo

HOST = "localhost"
EXPIRED_ACCOUNT = 2000
USERS, CONTACTS_PER_USER = 200, 5


def sql(server, query: str) -> list[list[str]]:
    out = postgres.psql(postgres_conninfo(), query, server.postgres_database)
    return [line.split("|") for line in out.splitlines() if line]


def rows_of(server, store: str) -> dict:
    return {(user, key): (kind, value) for user, key, kind, value in
            sql(server, f"SELECT \"user\", key, type, value FROM prosody WHERE store = '{store}'")}


def test_invites_are_rows_in_postgresql(make_server):
    server = make_server(storage="postgres")
    server.api("create_user", "bob", "pw")
    account = server.api1("create_account")
    contact = server.api1("create_contact", "bob", True)
    if server.storage_layout() == "records":
        # One row per invite: user = the token, key "invite", the record inside the audit record.
        entries = rows_of(server, "invites")
        assert entries[(account["token"], "invite")][0] == "json"
        assert json.loads(entries[(account["token"], "invite")][1])["record"]["token"] == account["token"]
        assert json.loads(entries[(contact["token"], "invite")][1])["record"]["jid"] == "bob@localhost"
        assert ("", account["token"]) not in rows_of(server, "invite_token")
    else:
        rows = rows_of(server, "invite_token")
        assert rows[("", account["token"])][0] == "json"
        assert json.loads(rows[("", account["token"])][1])["token"] == account["token"]
        assert json.loads(rows[("", contact["token"])][1])["jid"] == "bob@localhost"
    assert rows_of(server, "invite_token")[("bob", contact["token"])] == ("number", str(contact["expires"]))
    assert not server.sqlite_path.exists()


def test_purge_removes_thousands_of_expired_rows(make_server):
    """Expired account invites and contact invites of many users (both halves), written straight
    into the table in the stock layout, as mod_storage_sql writes it; one purge removes them all
    and nothing else (in the per-invite layout, the move of what it finds in the stock layout
    leaves them behind)."""
    server = make_server(storage="postgres", options={"invites_purge_delay": 3600})
    server.api("create_user", "bob", "pw")
    fresh = [server.api1("create_account"), server.api1("create_contact", "bob", True)]
    now = server.api1("now")
    created, expires = now - 100000, now - 90000  # expired more than the hour of grace ago

    record = ("json_build_object('type', 'register', 'jid', 'localhost', 'token', t, 'allow_registration', true, "
              f"'uri', 'xmpp:localhost?register;preauth=' || t, 'created_at', {created}, 'expires', {expires})::text")
    sql(server, f"""INSERT INTO prosody (host, "user", store, key, type, value)
        SELECT 'localhost', '', 'invite_token', t, 'json', {record}
        FROM (SELECT 'oldacct' || lpad(i::text, 17, '0') AS t FROM generate_series(1, {EXPIRED_ACCOUNT}) i) s""")
    contact = ("json_build_object('type', 'roster', 'jid', u || '@localhost', 'token', t, 'allow_registration', true, "
               f"'uri', 'xmpp:' || u || '@localhost?roster;preauth=' || t || ';ibr=y', "
               f"'created_at', {created}, 'expires', {expires})::text")
    pairs = (f"SELECT 'user' || (i / {CONTACTS_PER_USER}) AS u, 'oldcont' || lpad(i::text, 17, '0') AS t "
             f"FROM generate_series(0, {USERS * CONTACTS_PER_USER - 1}) i")
    sql(server, f"""INSERT INTO prosody (host, "user", store, key, type, value)
        SELECT 'localhost', '', 'invite_token', t, 'json', {contact} FROM ({pairs}) s""")
    sql(server, f"""INSERT INTO prosody (host, "user", store, key, type, value)
        SELECT 'localhost', u, 'invite_token', t, 'number', '{expires}' FROM ({pairs}) s""")
    expired = EXPIRED_ACCOUNT + 2 * USERS * CONTACTS_PER_USER

    def old_rows() -> int:
        return int(sql(server, "SELECT count(*) FROM prosody WHERE store = 'invite_token' AND key LIKE 'old%'")[0][0])

    assert old_rows() == expired
    assert server.api1("get", "oldacct" + "0" * 16 + "1") is None  # expired: refused even before the purge
    removed = server.api1("purge", timeout=120)
    assert removed == expired
    assert old_rows() == 0
    for invite in fresh:
        assert server.api1("store_get", None, invite["token"])["token"] == invite["token"]
    assert server.api1("store_get", "bob", fresh[1]["token"]) == fresh[1]["expires"]
    assert server.api1("purge") == 0
