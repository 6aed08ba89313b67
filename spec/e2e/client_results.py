"""What an XMPP client reads from the server's replies: request outcomes (XMPP errors),
registration, ad-hoc and subscription results, data forms and rosters."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from rawxmpp import NS_CLIENT, NS_STANZAS, local, ns_of, to_xml

NS_ROSTER = "jabber:iq:roster"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"


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
