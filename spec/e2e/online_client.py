"""A logged-in client session kept open in a background thread while a test goes on."""

from __future__ import annotations

import asyncio
import threading
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

from client_results import NS_ROSTER, AdhocResult, parse_roster
from client_session import DEFAULT_TIMEOUT, ClientError, Session, bare_jid, shutdown_loop
from rawxmpp import local


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
        shutdown_loop(loop)

    async def _login(self):
        self.session = Session(self.server, self.jid, self.password, timeout=self.timeout)
        if self.auto_approve:
            self.session.on_stanza.append(self._approve)
        if not await self.session.login(fetch_roster=self.fetch_roster, presence=self.presence):
            raise ClientError(f"login as {self.jid} failed")

    def _approve(self, el):
        if local(el.tag) == "presence" and el.get("type") == "subscribe":
            self.session.send_raw(f"<presence type='subscribed' to={quoteattr(bare_jid(el.get('from')))}/>")

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
            if from_ is not None and bare_jid(el.get("from")) != bare_jid(from_):
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
            and bare_jid(el.get("from")) == bare_jid(from_),
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
