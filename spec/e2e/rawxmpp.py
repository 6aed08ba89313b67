"""A minimal raw-XML XMPP client for protocol-level checks.

Plain TCP to the test server's c2s port; no TLS. Used where a full client
library gets in the way: reading stream features before authentication,
sending a pre-auth iq or an in-band registration on an unauthenticated
stream (several on one stream, or racing streams), and looking at replies
exactly as the server sent them.

Elements are xml.etree.ElementTree elements with Clark-notation tags,
e.g. "{jabber:client}iq", "{urn:xmpp:invite}register".
"""

from __future__ import annotations

import base64
import itertools
import socket
import threading
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_PARS = "urn:xmpp:pars:0"
NS_INVITE = "urn:xmpp:invite"
NS_IBR_TOKEN = "urn:xmpp:ibr-token:0"
NS_REGISTER = "jabber:iq:register"
NS_FEATURE_REGISTER = "http://jabber.org/features/iq-register"

_ids = itertools.count(1)


def new_id(prefix: str = "raw") -> str:
    return f"{prefix}{next(_ids)}"


class StreamClosed(ConnectionError):
    pass


def to_xml(el: ET.Element) -> str:
    """Serialize an element (namespace prefixes are ElementTree's own)."""
    return ET.tostring(el, encoding="unicode")


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def ns_of(tag: str) -> str | None:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else None


def children(el: ET.Element) -> list[tuple[str, str | None]]:
    """[(local name, namespace)] of el's direct children — handy for stream features."""
    return [(local(c.tag), ns_of(c.tag)) for c in el]


def stanza_error(el: ET.Element) -> dict | None:
    """{"type", "condition", "text"} of a stanza's <error/>, or None if it has none."""
    err = el.find(f"{{{NS_CLIENT}}}error")
    if err is None:
        return None
    condition, text = None, None
    for c in err:
        if ns_of(c.tag) == NS_STANZAS:
            if local(c.tag) == "text":
                text = c.text or ""
            else:
                condition = local(c.tag)
    return {"type": err.get("type"), "condition": condition, "text": text}


class RawXMPP:
    """One c2s stream. Use as a context manager, or call close()."""

    def __init__(self, port_or_server, host: str = "localhost", timeout: float = 5.0):
        self.port = getattr(port_or_server, "c2s_port", port_or_server)
        self.host = host
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.stream_attrs: dict = {}
        self.features: ET.Element | None = None
        self.closed = False
        self._parser = None
        self._depth = 0
        self._root = None
        self._queue: list[ET.Element] = []
        self.received: list[ET.Element] = []  # every top-level element, in order
        self.jid: str | None = None

    # -------------------------------------------------------------- stream

    def connect(self) -> "RawXMPP":
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        return self

    def open(self) -> ET.Element:
        """Connect (if needed), send the stream header, return <stream:features/>."""
        if self.sock is None:
            self.connect()
        self._new_parser()
        self.send(
            "<?xml version='1.0'?>"
            f"<stream:stream to={quoteattr(self.host)} xmlns='{NS_CLIENT}' "
            f"xmlns:stream='{NS_STREAM}' version='1.0' xml:lang='en'>"
        )
        self.features = self.recv_until(lambda el: el.tag == f"{{{NS_STREAM}}}features")
        return self.features

    def _new_parser(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            try:
                if not self.closed:
                    self.sock.sendall(b"</stream:stream>")
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        self.closed = True

    # ------------------------------------------------------------ send/recv

    def send(self, data: str | bytes) -> None:
        if self.sock is None:
            raise StreamClosed("not connected")
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _read_more(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from server in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from server in time") from None
        if not data:
            self.closed = True
            raise StreamClosed("server closed the connection")
        self._parser.feed(data)
        for event, el in self._parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root = el
                    self.stream_attrs = dict(el.attrib)
            else:
                self._depth -= 1
                if self._depth == 1:
                    self._queue.append(el)
                    self.received.append(el)
                    if self._root is not None:
                        try:
                            self._root.remove(el)
                        except ValueError:
                            pass
                elif self._depth == 0:
                    self.closed = True

    def recv(self, timeout: float | None = None) -> ET.Element:
        """Next top-level element (stanza, features, stream error, SASL reply)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._queue:
            if self.closed:
                raise StreamClosed("stream closed by server")
            self._read_more(deadline)
        return self._queue.pop(0)

    def recv_until(self, predicate, timeout: float | None = None) -> ET.Element:
        """First element matching predicate; other elements stay queued for later."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for i, el in enumerate(self._queue):
                if predicate(el):
                    return self._queue.pop(i)
                if el.tag == f"{{{NS_STREAM}}}error":
                    raise StreamClosed("stream error: " + to_xml(el))
            if self.closed:
                raise StreamClosed("stream closed by server")
            self._read_more(deadline)

    def pending(self, wait: float = 0.2) -> list[ET.Element]:
        """Everything that arrives within `wait` seconds (drains the queue)."""
        deadline = time.monotonic() + wait
        try:
            while not self.closed:
                self._read_more(deadline)
        except (TimeoutError, StreamClosed):
            pass
        out, self._queue = self._queue, []
        return out

    def iq(self, payload: str, type: str = "set", to: str | None = None,
           timeout: float | None = None) -> ET.Element:
        """Send <iq type=... id=...>payload</iq>; return the reply with that id."""
        iq_id = new_id("iq")
        to_attr = f" to={quoteattr(to)}" if to else ""
        self.send(f"<iq type={quoteattr(type)} id={quoteattr(iq_id)}{to_attr}>{payload}</iq>")
        return self.wait_id(iq_id, timeout)

    def wait_id(self, stanza_id: str, timeout: float | None = None) -> ET.Element:
        return self.recv_until(lambda el: el.get("id") == stanza_id, timeout)

    # ---------------------------------------------------------- protocol

    def feature_namespaces(self) -> set[tuple[str, str | None]]:
        return set(children(self.features)) if self.features is not None else set()

    def preauth(self, token: str, timeout: float | None = None) -> ET.Element:
        """XEP-0401/0445 pre-auth iq on this (unauthenticated) stream; returns the reply."""
        return self.iq(f"<preauth xmlns='{NS_PARS}' token={quoteattr(token)}/>", timeout=timeout)

    def register_form(self, timeout: float | None = None) -> ET.Element:
        return self.iq(f"<query xmlns='{NS_REGISTER}'/>", type="get", timeout=timeout)

    def register(self, username: str, password: str, timeout: float | None = None) -> ET.Element:
        """XEP-0077 legacy-field registration; returns the reply iq."""
        return self.iq(
            f"<query xmlns='{NS_REGISTER}'><username>{escape(username)}</username>"
            f"<password>{escape(password)}</password></query>",
            timeout=timeout,
        )

    def auth_plain(self, username: str, password: str, resource: str = "raw") -> bool:
        """SASL PLAIN, stream restart, resource bind. True on success."""
        blob = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{blob}</auth>")
        reply = self.recv_until(lambda el: ns_of(el.tag) == NS_SASL)
        if local(reply.tag) != "success":
            return False
        self.open()
        res = self.iq(f"<bind xmlns='{NS_BIND}'><resource>{escape(resource)}</resource></bind>")
        if res.get("type") != "result":
            return False
        jid_el = res.find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
        self.jid = jid_el.text if jid_el is not None else None
        return True


def open_stream(server, host: str = "localhost", timeout: float = 5.0) -> RawXMPP:
    """Connected RawXMPP with the stream open and features read."""
    raw = RawXMPP(server, host=host, timeout=timeout)
    try:
        raw.open()
    except BaseException:
        raw.close()
        raise
    return raw


def stream_features(server, host: str = "localhost") -> ET.Element:
    """The unauthenticated stream features the server offers for host."""
    with RawXMPP(server, host=host) as raw:
        return raw.open()


def race_register(server, token: str, usernames, password: str = "pw", host: str = "localhost",
                  timeout: float = 10.0) -> list[dict]:
    """Open one stream per username, pre-auth each with the same token, then
    send all registrations at (nearly) the same moment from parallel threads.

    Returns, per username in order, {"username", "preauth": error-or-None,
    "preauth_ok": bool, "register_ok": bool, "register_error": error-or-None}.
    """
    usernames = list(usernames)
    streams = [open_stream(server, host, timeout) for _ in usernames]
    results: list[dict] = [{} for _ in usernames]
    barrier = threading.Barrier(len(usernames))
    try:
        for raw, name, res in zip(streams, usernames, results):
            reply = raw.preauth(token)
            res.update(username=name, preauth_ok=reply.get("type") == "result", preauth=stanza_error(reply))

        def go(i):
            res = results[i]
            try:
                barrier.wait(timeout)
                reply = streams[i].register(usernames[i], password)
                res["register_ok"] = reply.get("type") == "result"
                res["register_error"] = stanza_error(reply)
            except Exception as e:  # reported, not raised from a thread
                res["register_ok"] = False
                res["register_error"] = {"type": None, "condition": "exception", "text": repr(e)}

        threads = [threading.Thread(target=go, args=(i,), daemon=True) for i in range(len(usernames))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 5)
    finally:
        for raw in streams:
            raw.close()
    return results
