"""What a user's XMPP client does, driven through slixmpp (PyPI 1.17).

Every public function here is synchronous: it makes a fresh asyncio loop,
runs one client session on it under an overall timeout, and closes the
loop again, so a test can never hang on the network and no loop leaks
between tests. OnlineClient keeps a session open in a background thread
while the test does other things.

Connections are plain TCP to the test server's loopback c2s port (no
STARTTLS; SASL over plaintext allowed on the client side).

Stanzas that slixmpp would hold back before login (anything that is not
bind/session/register) are written with send_raw and their replies matched
by id, which also keeps what goes on the wire exactly as written here.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatcherId

from rawxmpp import (
    NS_CLIENT,
    NS_FEATURE_REGISTER,
    NS_PARS,
    NS_REGISTER,
    NS_STANZAS,
    children,
    local,
    ns_of,
    to_xml,
)

NS_ROSTER = "jabber:iq:roster"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"

DEFAULT_TIMEOUT = 15.0
log = logging.getLogger("e2e.client")
_ids = itertools.count(1)


def _new_id(prefix="e2e"):
    return f"{prefix}{next(_ids)}"


class ClientError(AssertionError):
    """The client could not do what the test asked (connect, log in, ...)."""


# --------------------------------------------------------------------------
# result types


@dataclass
class Outcome:
    """Reply to one request: ok, or the XMPP error (type, condition, text)."""

    ok: bool
    error_type: str | None = None
    condition: str | None = None
    text: str | None = None
    xml: str | None = None

    def __bool__(self):
        return self.ok

    @classmethod
    def from_reply(cls, el: ET.Element | None) -> "Outcome":
        if el is None:
            return cls(False, condition="no-reply")
        if el.get("type") != "error":
            return cls(True, xml=to_xml(el))
        err = el.find(f"{{{NS_CLIENT}}}error")
        etype = err.get("type") if err is not None else None
        condition, text = None, None
        for c in (err if err is not None else []):
            if ns_of(c.tag) == NS_STANZAS:
                if local(c.tag) == "text":
                    text = c.text or ""
                else:
                    condition = local(c.tag)
        return cls(False, etype, condition, text, to_xml(el))


@dataclass
class RegisterResult:
    """What happened during one XEP-0445 registration attempt."""

    features: set = field(default_factory=set)  # {(name, namespace)} of the first stream features
    features_xml: str | None = None
    preauth: Outcome | None = None  # None when no token was sent
    form_xml: str | None = None  # the registration form the server offered
    registration: Outcome | None = None  # None when registration was never attempted
    logged_in: bool | None = None  # None when login was not attempted

    @property
    def ok(self) -> bool:
        return bool(self.registration)

    def has_feature(self, name: str, ns: str) -> bool:
        return (name, ns) in self.features


@dataclass
class Field:
    var: str | None
    type: str | None
    label: str | None
    values: list

    @property
    def value(self):
        return self.values[0] if self.values else None


@dataclass
class Form:
    type: str | None
    title: str | None
    instructions: list
    fields: dict  # var -> Field (fields without var are keyed by their label)

    def value(self, var):
        f = self.fields.get(var)
        return f.value if f else None


@dataclass
class AdhocResult:
    listed: bool  # was the node in the disco#items of the commands node?
    commands: dict  # node -> name, as discovered
    status: str | None = None  # completed / executing / canceled
    sessionid: str | None = None
    actions: list = field(default_factory=list)
    form: Form | None = None
    notes: list = field(default_factory=list)  # [(type, text)]
    error: Outcome | None = None  # iq error, if the command failed that way
    xml: str | None = None  # the last reply
    stages: list = field(default_factory=list)  # every reply, in order

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == "completed"


@dataclass
class SubscribeResult:
    sent_xml: str
    received: list  # [(type, from)] of presences from the contact, in order
    got_subscribed: bool
    got_subscribe: bool
    approved: bool  # did we answer their subscribe with subscribed?
    roster: dict  # our roster afterwards (see roster())
    roster_pushes: list  # [(jid, subscription, ask)] pushes received during the exchange
    stanzas: list  # every stanza received (xml strings)


def parse_form(x: ET.Element | None) -> Form | None:
    if x is None:
        return None
    fields = {}
    for f in x.findall(f"{{{NS_DATA}}}field"):
        values = [v.text or "" for v in f.findall(f"{{{NS_DATA}}}value")]
        key = f.get("var") if f.get("var") is not None else (f.get("label") or f"#{len(fields)}")
        fields[key] = Field(f.get("var"), f.get("type"), f.get("label"), values)
    title = x.find(f"{{{NS_DATA}}}title")
    return Form(
        type=x.get("type"),
        title=title.text if title is not None else None,
        instructions=[i.text or "" for i in x.findall(f"{{{NS_DATA}}}instructions")],
        fields=fields,
    )


def parse_roster(query: ET.Element | None) -> dict:
    """<query xmlns='jabber:iq:roster'> -> {jid: {"subscription", "ask", "name", "groups"}}."""
    items = {}
    if query is None:
        return items
    for item in query.findall(f"{{{NS_ROSTER}}}item"):
        items[item.get("jid")] = {
            "subscription": item.get("subscription", "none"),
            "ask": item.get("ask"),
            "name": item.get("name"),
            "groups": [g.text or "" for g in item.findall(f"{{{NS_ROSTER}}}group")],
        }
    return items


def _bare(jid: str | None) -> str:
    return (jid or "").split("/", 1)[0]


# --------------------------------------------------------------------------
# running coroutines synchronously


def _run(make_coro, timeout: float):
    """Run make_coro() on a fresh loop with an overall timeout; always close the loop."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(asyncio.wait_for(make_coro(), timeout))
        except asyncio.TimeoutError:
            raise ClientError(f"client session did not finish within {timeout}s") from None
    finally:
        _shutdown_loop(loop)


def _shutdown_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=2))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except Exception:  # never let clean-up hide the real result
        log.debug("loop shutdown", exc_info=True)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


# --------------------------------------------------------------------------
# one client session


def _new_xmpp(jid: str, password: str) -> slixmpp.ClientXMPP:
    xmpp = slixmpp.ClientXMPP(
        jid,
        password,
        plugin_config={"feature_mechanisms": {"unencrypted_plain": True, "unencrypted_scram": True}},
    )
    xmpp.enable_starttls = False
    xmpp.enable_direct_tls = False
    xmpp.enable_plaintext = True
    xmpp.use_ipv6 = False
    xmpp.auto_reconnect = False
    # A test decides what to do with subscription requests.
    xmpp.auto_authorize = None
    xmpp.auto_subscribe = False
    return xmpp


class Session:
    """An asyncio-side client session (used by the sync helpers and OnlineClient)."""

    def __init__(self, server, jid: str, password: str, *, timeout: float = DEFAULT_TIMEOUT):
        self.server = server
        self.jid = jid
        self.password = password
        self.host = _bare(jid).split("@")[-1]
        self.timeout = timeout
        self.xmpp = _new_xmpp(jid, password)
        self.stanzas: list[ET.Element] = []  # everything received after the stream opened
        self.features: ET.Element | None = None
        self.on_stanza = []  # callbacks(element) run on the loop for each stanza
        self._lost = asyncio.get_running_loop().create_future()
        self.xmpp.add_filter("in", self._record)
        self.xmpp.add_event_handler("disconnected", self._on_disconnected)
        self.xmpp.add_event_handler("connection_failed", self._on_disconnected)

    def _record(self, stanza):
        el = copy.deepcopy(stanza.xml)
        if local(el.tag) == "features" and self.features is None:
            self.features = el
        self.stanzas.append(el)
        for cb in list(self.on_stanza):
            try:
                cb(el)
            except Exception:
                log.exception("stanza callback failed")
        return stanza

    def _on_disconnected(self, *_):
        if not self._lost.done():
            self._lost.set_result(True)

    @property
    def lost(self) -> bool:
        return self._lost.done()

    def connect(self) -> None:
        self.xmpp.connect(host="127.0.0.1", port=self.server.c2s_port)

    async def login(self, *, fetch_roster: bool = True, presence: bool = True) -> bool:
        """Connect and authenticate. False if authentication failed."""
        loop = asyncio.get_running_loop()
        started = loop.create_future()

        def done(value):
            if not started.done():
                started.set_result(value)

        self.xmpp.add_event_handler("session_start", lambda _e: done(True))
        self.xmpp.add_event_handler("failed_all_auth", lambda _e: done(False))
        self.xmpp.add_event_handler("disconnected", lambda _e: done(None))
        self.xmpp.add_event_handler("connection_failed", lambda _e: done(None))
        self.connect()
        try:
            result = await asyncio.wait_for(started, self.timeout)
        except asyncio.TimeoutError:
            raise ClientError(f"{self.jid}: no session within {self.timeout}s "
                              f"(port {self.server.c2s_port})") from None
        if result is None:
            raise ClientError(f"{self.jid}: connection lost before login finished")
        if not result:
            return False
        if fetch_roster:
            await self.iq("get", None, f"<query xmlns='{NS_ROSTER}'/>")
        if presence:
            self.send_raw("<presence/>")
        return True

    def send_raw(self, data: str) -> None:
        self.xmpp.send_raw(data)

    async def iq(self, type: str, to: str | None, payload: str, timeout: float | None = None) -> ET.Element:
        """Send an iq (raw, so it also goes out before login); return the reply element."""
        iq_id = _new_id("iq")
        reply = await self.send_and_wait(
            f"<iq type={quoteattr(type)} id={quoteattr(iq_id)}"
            + (f" to={quoteattr(to)}" if to else "")
            + f">{payload}</iq>",
            iq_id,
            timeout,
        )
        return reply

    async def send_and_wait(self, data: str, stanza_id: str, timeout: float | None = None) -> ET.Element:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        name = f"reply-{stanza_id}"

        def got(stanza):
            if not fut.done():
                fut.set_result(copy.deepcopy(stanza.xml))

        self.xmpp.register_handler(Callback(name, MatcherId(stanza_id), got, once=True))
        try:
            self.send_raw(data)
            waiters = [fut, self._lost]
            done, _ = await asyncio.wait(waiters, timeout=timeout or self.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if fut.done():
                return fut.result()
            if self._lost.done():
                raise ClientError(f"{self.jid}: stream closed while waiting for reply to {data[:200]}")
            raise ClientError(f"{self.jid}: no reply within {timeout or self.timeout}s to {data[:200]}")
        finally:
            self.xmpp.remove_handler(name)

    async def wait_for(self, predicate, timeout: float, start: int = 0) -> ET.Element | None:
        """First received element (from index `start`) matching predicate, or None on timeout."""
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.stanzas):
                if predicate(self.stanzas[i]):
                    return self.stanzas[i]
                i += 1
            if time.monotonic() >= deadline or self.lost:
                return None
            await asyncio.sleep(0.02)

    async def roster(self) -> dict:
        reply = await self.iq("get", None, f"<query xmlns='{NS_ROSTER}'/>")
        if reply.get("type") != "result":
            raise ClientError(f"roster fetch failed: {to_xml(reply)}")
        return parse_roster(reply.find(f"{{{NS_ROSTER}}}query"))

    async def disco_items(self, to: str, node: str | None = None) -> list[dict]:
        node_attr = f" node={quoteattr(node)}" if node else ""
        reply = await self.iq("get", to, f"<query xmlns='{NS_DISCO_ITEMS}'{node_attr}/>")
        items = []
        q = reply.find(f"{{{NS_DISCO_ITEMS}}}query")
        for it in (q if q is not None else []):
            items.append(dict(it.attrib))
        return items

    async def adhoc(self, node: str, form_values: dict | None = None, to: str | None = None,
                    submit_action: str = "complete") -> AdhocResult:
        to = to or self.host
        items = await self.disco_items(to, NS_COMMANDS)
        commands = {i.get("node"): i.get("name") for i in items}
        result = AdhocResult(listed=node in commands, commands=commands)
        reply = await self.iq(
            "set", to, f"<command xmlns='{NS_COMMANDS}' node={quoteattr(node)} action='execute'/>"
        )
        _fill_adhoc(result, reply)
        if form_values is not None and result.error is None and result.status == "executing":
            fields = "".join(_form_field(k, v) for k, v in form_values.items())
            reply = await self.iq(
                "set", to,
                f"<command xmlns='{NS_COMMANDS}' node={quoteattr(node)} "
                f"sessionid={quoteattr(result.sessionid or '')} action={quoteattr(submit_action)}>"
                f"<x xmlns='{NS_DATA}' type='submit'>{fields}</x></command>",
            )
            _fill_adhoc(result, reply)
        return result

    async def close(self) -> None:
        if self.lost:
            return
        try:
            fut = self.xmpp.disconnect(wait=1.0)
            if fut is not None:
                await asyncio.wait_for(asyncio.shield(fut), 3)
        except Exception:
            log.debug("disconnect", exc_info=True)
            try:
                self.xmpp.abort()
            except Exception:
                pass


def _form_field(var, value) -> str:
    values = value if isinstance(value, (list, tuple)) else [value]
    inner = "".join(
        f"<value>{escape('true' if v is True else 'false' if v is False else str(v))}</value>" for v in values
    )
    return f"<field var={quoteattr(str(var))}>{inner}</field>"


def _fill_adhoc(result: AdhocResult, reply: ET.Element) -> None:
    result.xml = to_xml(reply)
    result.stages.append(result.xml)
    if reply.get("type") == "error":
        result.error = Outcome.from_reply(reply)
        result.status = None
        return
    cmd = reply.find(f"{{{NS_COMMANDS}}}command")
    if cmd is None:
        result.status = None
        return
    result.status = cmd.get("status")
    result.sessionid = cmd.get("sessionid") or result.sessionid
    actions = cmd.find(f"{{{NS_COMMANDS}}}actions")
    result.actions = [local(a.tag) for a in actions] if actions is not None else []
    result.form = parse_form(cmd.find(f"{{{NS_DATA}}}x"))
    result.notes = [(n.get("type"), n.text or "") for n in cmd.findall(f"{{{NS_COMMANDS}}}note")]


async def _with_session(server, jid, password, timeout, body):
    """Log in as jid, run body(session), always disconnect."""
    session = Session(server, jid, password, timeout=timeout)
    try:
        if not await session.login():
            raise ClientError(f"login as {jid} failed")
        return await body(session)
    finally:
        await session.close()


# --------------------------------------------------------------------------
# public synchronous helpers


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
    return _run(lambda: _register(server, username, password, token, host, login, stop_on_preauth_error,
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

    return _run(go, timeout + 5)


def roster(server, jid: str, password: str, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """{contact_jid: {"subscription": both|to|from|none, "ask": "subscribe"|None, "name", "groups"}}."""

    async def body(session):
        return await session.roster()

    return _run(lambda: _with_session(server, jid, password, timeout, body), timeout + 5)


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
        contact = _bare(contact_jid)
        received, pushes = [], []
        approved = False

        def watch(el):
            nonlocal approved
            if local(el.tag) == "presence" and _bare(el.get("from")) == contact:
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
        pid = _new_id("sub")
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

    return _run(lambda: _with_session(server, jid, password, timeout, body), timeout + wait + 5)


def adhoc(server, jid: str, password: str, node: str, form_values: dict | None = None, *,
          to: str | None = None, submit_action: str = "complete",
          timeout: float = DEFAULT_TIMEOUT) -> AdhocResult:
    """Discover the ad-hoc commands of `to` (default: the user's host) and execute `node`.

    If the command answers with a form (status executing) and form_values is
    given, the form is submitted with those values.
    """

    async def body(session):
        return await session.adhoc(node, form_values, to=to, submit_action=submit_action)

    return _run(lambda: _with_session(server, jid, password, timeout, body), timeout + 5)


def disco_items(server, jid: str, password: str, to: str, node: str | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
    async def body(session):
        return await session.disco_items(to, node)

    return _run(lambda: _with_session(server, jid, password, timeout, body), timeout + 5)


# --------------------------------------------------------------------------
# a session that stays online


class OnlineClient:
    """A logged-in session kept open in a background thread.

        with OnlineClient(server, "alice@localhost", "pw") as alice:
            ...  # do things; alice receives roster pushes and presences
            alice.wait_for(lambda el: ..., timeout=5)

    By default it fetches the roster (so it gets roster pushes) and sends
    initial presence. auto_approve answers inbound subscription requests with
    `subscribed`; otherwise they are only recorded.
    """

    def __init__(self, server, jid: str, password: str, *, fetch_roster: bool = True, presence: bool = True,
                 auto_approve: bool = False, timeout: float = DEFAULT_TIMEOUT):
        self.server, self.jid, self.password = server, jid, password
        self.fetch_roster, self.presence, self.auto_approve = fetch_roster, presence, auto_approve
        self.timeout = timeout
        self.session: Session | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    # lifecycle -----------------------------------------------------------

    def start(self) -> "OnlineClient":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._thread_main, name=f"xmpp-{self.jid}", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.timeout + 5):
            self.stop()
            raise ClientError(f"{self.jid}: session did not start within {self.timeout}s")
        if self._start_error is not None:
            err = self._start_error
            self.stop()
            raise err
        return self

    def _thread_main(self):
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._login())
        except BaseException as e:  # reported to start()
            self._start_error = e if isinstance(e, Exception) else ClientError(repr(e))
        finally:
            self._ready.set()
        if self._start_error is None:
            loop.run_forever()
        _shutdown_loop(loop)

    async def _login(self):
        self.session = Session(self.server, self.jid, self.password, timeout=self.timeout)
        if self.auto_approve:
            self.session.on_stanza.append(self._approve)
        if not await self.session.login(fetch_roster=self.fetch_roster, presence=self.presence):
            raise ClientError(f"login as {self.jid} failed")

    def _approve(self, el):
        if local(el.tag) == "presence" and el.get("type") == "subscribe":
            self.session.send_raw(f"<presence type='subscribed' to={quoteattr(_bare(el.get('from')))}/>")

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None:
            return
        if self.session is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self.session.close(), loop).result(5)
            except Exception:
                pass
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        self._loop = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # use -----------------------------------------------------------------

    def call(self, make_coro, timeout: float | None = None):
        """Run make_coro(session) on the client's loop and return its result."""
        if self._loop is None or not self._loop.is_running():
            raise ClientError(f"{self.jid}: not online")
        fut = asyncio.run_coroutine_threadsafe(make_coro(self.session), self._loop)
        try:
            return fut.result(timeout or self.timeout)
        except TimeoutError:
            fut.cancel()
            raise ClientError(f"{self.jid}: operation timed out") from None

    def send_raw(self, data: str) -> None:
        self._loop.call_soon_threadsafe(self.session.send_raw, data)

    def iq(self, type: str, to: str | None, payload: str) -> ET.Element:
        return self.call(lambda s: s.iq(type, to, payload))

    def roster(self) -> dict:
        return self.call(lambda s: s.roster())

    def adhoc(self, node: str, form_values: dict | None = None, to: str | None = None) -> AdhocResult:
        return self.call(lambda s: s.adhoc(node, form_values, to=to))

    @property
    def stanzas(self) -> list[ET.Element]:
        return list(self.session.stanzas) if self.session else []

    @property
    def online(self) -> bool:
        return self.session is not None and not self.session.lost

    def mark(self) -> int:
        """Index to pass as `since` to wait_for/presences to ignore what came before."""
        return len(self.session.stanzas)

    def wait_for(self, predicate, timeout: float = 5.0, since: int = 0) -> ET.Element | None:
        """First received stanza (from index `since`) matching predicate, or None after timeout."""
        deadline = time.monotonic() + timeout
        i = since
        while True:
            stanzas = self.session.stanzas
            while i < len(stanzas):
                if predicate(stanzas[i]):
                    return stanzas[i]
                i += 1
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def presences(self, type: str | None = None, from_: str | None = None, since: int = 0) -> list[ET.Element]:
        out = []
        for el in self.stanzas[since:]:
            if local(el.tag) != "presence":
                continue
            if type is not None and (el.get("type") or "available") != type:
                continue
            if from_ is not None and _bare(el.get("from")) != _bare(from_):
                continue
            out.append(el)
        return out

    def roster_pushes(self, since: int = 0) -> list[tuple]:
        """[(jid, subscription, ask)] from roster pushes received so far."""
        out = []
        for el in self.stanzas[since:]:
            if local(el.tag) == "iq" and el.get("type") == "set":
                q = el.find(f"{{{NS_ROSTER}}}query")
                if q is not None:
                    out.extend((j, i["subscription"], i["ask"]) for j, i in parse_roster(q).items())
        return out

    def wait_for_presence(self, type: str, from_: str, timeout: float = 5.0, since: int = 0):
        return self.wait_for(
            lambda el: local(el.tag) == "presence" and (el.get("type") or "available") == type
            and _bare(el.get("from")) == _bare(from_),
            timeout, since,
        )

    def wait_for_roster_push(self, jid: str, timeout: float = 5.0, since: int = 0, subscription: str | None = None):
        def match(el):
            if local(el.tag) != "iq" or el.get("type") != "set":
                return False
            q = el.find(f"{{{NS_ROSTER}}}query")
            items = parse_roster(q) if q is not None else {}
            item = items.get(jid)
            return item is not None and (subscription is None or item["subscription"] == subscription)
        return self.wait_for(match, timeout, since)
