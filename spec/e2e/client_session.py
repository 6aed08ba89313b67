"""One slixmpp (PyPI 1.17) client session on asyncio, and running such sessions synchronously.

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
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatcherId

from client_results import (
    NS_COMMANDS,
    NS_DATA,
    NS_DISCO_ITEMS,
    NS_ROSTER,
    AdhocResult,
    Outcome,
    parse_form,
    parse_roster,
)
from rawxmpp import local, to_xml

DEFAULT_TIMEOUT = 15.0
log = logging.getLogger("e2e.client")
_ids = itertools.count(1)


def new_id(prefix="e2e"):
    return f"{prefix}{next(_ids)}"


class ClientError(AssertionError):
    """The client could not do what the test asked (connect, log in, ...)."""


def bare_jid(jid: str | None) -> str:
    return (jid or "").split("/", 1)[0]


# --------------------------------------------------------------------------
# running coroutines synchronously


def run_sync(make_coro, timeout: float):
    """Run make_coro() on a fresh loop with an overall timeout; always close the loop."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(asyncio.wait_for(make_coro(), timeout))
        except asyncio.TimeoutError:
            raise ClientError(f"client session did not finish within {timeout}s") from None
    finally:
        shutdown_loop(loop)


def shutdown_loop(loop: asyncio.AbstractEventLoop) -> None:
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
        self.host = bare_jid(jid).split("@")[-1]
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
        iq_id = new_id("iq")
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


async def with_session(server, jid, password, timeout, body):
    """Log in as jid, run body(session), always disconnect."""
    session = Session(server, jid, password, timeout=timeout)
    try:
        if not await session.login():
            raise ClientError(f"login as {jid} failed")
        return await body(session)
    finally:
        await session.close()
