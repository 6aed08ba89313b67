"""What a user's XMPP client does, as synchronous calls a test makes.

Every function here makes a fresh asyncio loop, runs one client session
(client_session.Session) on it under an overall timeout, and closes the
loop again, so a test can never hang on the network and no loop leaks
between tests. online_client.OnlineClient keeps a session open in a
background thread while the test does other things.
"""

from __future__ import annotations

import asyncio
import time
from xml.sax.saxutils import escape, quoteattr

from client_results import (
    NS_ROSTER,
    AdhocResult,
    Outcome,
    RegisterResult,
    SubscribeResult,
    parse_roster,
)
from client_session import (
    DEFAULT_TIMEOUT,
    ClientError,
    Session,
    bare_jid,
    new_id,
    run_sync,
    with_session,
)
from rawxmpp import NS_FEATURE_REGISTER, NS_PARS, NS_REGISTER, children, local, to_xml


def register(server, username: str, password: str, token: str | None = None, host: str = "localhost", *,
             login: bool = True, stop_on_preauth_error: bool = False,
             timeout: float = DEFAULT_TIMEOUT) -> RegisterResult:
    """XEP-0445 registration as a client does it.

    Connects, reads the stream features, sends the pre-auth iq (when a token
    is given) before anything else, fetches the registration form and submits
    username/password (XEP-0077). When that succeeds and login=True, it logs
    in with the new account. Never raises for XMPP-level refusals: look at
    result.preauth / result.registration / result.logged_in. By default it
    still tries to register after a refused pre-auth (so tests can see what
    the server does then); stop_on_preauth_error=True gives up instead, as a
    careful client would (result.registration stays None).
    """
    return run_sync(lambda: _register(server, username, password, token, host, login, stop_on_preauth_error,
                                      timeout), timeout + 5)


async def _register(server, username, password, token, host, login, stop_on_preauth_error,
                    timeout) -> RegisterResult:
    result = RegisterResult()
    session = Session(server, f"{username}@{host}", password, timeout=timeout)
    xmpp = session.xmpp
    xmpp.register_plugin("xep_0077")  # stream-feature stanza support
    xmpp.unregister_feature("register", xmpp.plugin["xep_0077"].order)
    loop = asyncio.get_running_loop()
    finished = loop.create_future()

    def finish():
        if not finished.done():
            finished.set_result(True)

    async def register_feature(_features):
        try:
            if token is not None:
                reply = await session.iq("set", None, f"<preauth xmlns='{NS_PARS}' token={quoteattr(token)}/>")
                result.preauth = Outcome.from_reply(reply)
                if stop_on_preauth_error and not result.preauth:
                    finish()
                    return True
            form = await session.iq("get", None, f"<query xmlns='{NS_REGISTER}'/>")
            result.form_xml = to_xml(form)
            reply = await session.iq(
                "set", None,
                f"<query xmlns='{NS_REGISTER}'><username>{escape(username)}</username>"
                f"<password>{escape(password)}</password></query>",
            )
            result.registration = Outcome.from_reply(reply)
        except ClientError as e:
            result.registration = Outcome(False, condition="client-error", text=str(e))
        if not (login and result.registration):
            finish()
        return True  # go on with the next feature (SASL), as a client would

    xmpp.register_feature("register", register_feature, restart=False, order=50)
    def login_outcome(value):
        if not finished.done():
            result.logged_in = value
            finish()

    xmpp.add_event_handler("session_start", lambda _e: login_outcome(True))
    xmpp.add_event_handler("failed_all_auth", lambda _e: login_outcome(False))
    xmpp.add_event_handler("disconnected", lambda _e: finish())
    xmpp.add_event_handler("connection_failed", lambda _e: finish())
    session.connect()
    try:
        await asyncio.wait_for(finished, timeout)
    except asyncio.TimeoutError:
        raise ClientError(f"registration of {username}@{host} did not finish within {timeout}s") from None
    finally:
        if session.features is not None:
            result.features = set(children(session.features))
            result.features_xml = to_xml(session.features)
        await session.close()
    if (result.registration is None and not (stop_on_preauth_error and result.preauth is not None
                                             and not result.preauth)
            and ("register", NS_FEATURE_REGISTER) not in result.features):
        result.registration = Outcome(False, condition="feature-not-offered",
                                      text="server offered no in-band registration")
    if login and result.registration and result.logged_in is None:
        result.logged_in = False
    return result


def can_login(server, jid: str, password: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """True when jid/password authenticates and a session starts."""

    async def go():
        session = Session(server, jid, password, timeout=timeout)
        try:
            return await session.login(fetch_roster=False, presence=False)
        finally:
            await session.close()

    return run_sync(go, timeout + 5)


def roster(server, jid: str, password: str, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """{contact_jid: {"subscription": both|to|from|none, "ask": "subscribe"|None, "name", "groups"}}."""

    async def body(session):
        return await session.roster()

    return run_sync(lambda: with_session(server, jid, password, timeout, body), timeout + 5)


def subscribe_with_preauth(server, jid: str, password: str, contact_jid: str, token: str | None, *,
                           auto_approve: bool = True, wait: float = 3.0,
                           timeout: float = DEFAULT_TIMEOUT) -> SubscribeResult:
    """XEP-0379: as jid, send a subscribe carrying <preauth token=T/> to contact_jid.

    Collects the presences the contact sends back within `wait` seconds
    (stops early once both `subscribed` and `subscribe` arrived). With
    auto_approve, an inbound `subscribe` from the contact is answered with
    `subscribed`, as a client that initiated the exchange would.
    """

    async def body(session: Session):
        contact = bare_jid(contact_jid)
        received, pushes = [], []
        approved = False

        def watch(el):
            nonlocal approved
            if local(el.tag) == "presence" and bare_jid(el.get("from")) == contact:
                ptype = el.get("type") or "available"
                received.append((ptype, el.get("from")))
                if ptype == "subscribe" and auto_approve and not approved:
                    approved = True
                    session.send_raw(f"<presence type='subscribed' to={quoteattr(contact)}/>")
            elif local(el.tag) == "iq" and el.get("type") == "set":
                q = el.find(f"{{{NS_ROSTER}}}query")
                if q is not None:
                    for j, item in parse_roster(q).items():
                        pushes.append((j, item["subscription"], item["ask"]))

        session.on_stanza.append(watch)
        pid = new_id("sub")
        preauth = f"<preauth xmlns='{NS_PARS}' token={quoteattr(token)}/>" if token is not None else ""
        sent = f"<presence type='subscribe' to={quoteattr(contact)} id={quoteattr(pid)}>{preauth}</presence>"
        session.send_raw(sent)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not session.lost:
            types = {t for t, _ in received}
            if {"subscribed", "subscribe"} <= types:
                break
            await asyncio.sleep(0.02)
        # The server handles a session's stanzas in order: it answers this roster request only after
        # it has processed everything sent before it, our approval included.
        final = await session.roster()
        return SubscribeResult(
            sent_xml=sent,
            received=received,
            got_subscribed=any(t == "subscribed" for t, _ in received),
            got_subscribe=any(t == "subscribe" for t, _ in received),
            approved=approved,
            roster=final,
            roster_pushes=pushes,
            stanzas=[to_xml(e) for e in session.stanzas],
        )

    return run_sync(lambda: with_session(server, jid, password, timeout, body), timeout + wait + 5)


def adhoc(server, jid: str, password: str, node: str, form_values: dict | None = None, *,
          to: str | None = None, submit_action: str = "complete",
          timeout: float = DEFAULT_TIMEOUT) -> AdhocResult:
    """Discover the ad-hoc commands of `to` (default: the user's host) and execute `node`.

    If the command answers with a form (status executing) and form_values is
    given, the form is submitted with those values.
    """

    async def body(session):
        return await session.adhoc(node, form_values, to=to, submit_action=submit_action)

    return run_sync(lambda: with_session(server, jid, password, timeout, body), timeout + 5)


def disco_items(server, jid: str, password: str, to: str, node: str | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
    async def body(session):
        return await session.disco_items(to, node)

    return run_sync(lambda: with_session(server, jid, password, timeout, body), timeout + 5)
