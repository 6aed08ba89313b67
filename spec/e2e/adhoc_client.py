"""Ad-hoc command steps that client.adhoc() does not take (XEP-0050): any action, with or
without a submitted form, continuing a session; and disco#info of a command node.

Synchronous like client.py: each call logs in, does its steps and disconnects. Every request
is written exactly as given here, and each reply is kept verbatim (AdhocResult.xml).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from client_results import NS_COMMANDS, NS_DATA, AdhocResult, Outcome, parse_form
from online_client import OnlineClient
from rawxmpp import local, to_xml

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def _value(v) -> str:
    return "true" if v is True else "false" if v is False else str(v)


def command_xml(node: str, action: str | None = "execute", sessionid: str | None = None,
                form: dict | None = None) -> str:
    """A <command/> element; form values become a submitted jabber:x:data form."""
    attrs = f" node={quoteattr(node)}"
    if sessionid:
        attrs += f" sessionid={quoteattr(sessionid)}"
    if action:
        attrs += f" action={quoteattr(action)}"
    if form is None:
        return f"<command xmlns='{NS_COMMANDS}'{attrs}/>"
    fields = "".join(
        f"<field var={quoteattr(var)}>"
        + "".join(f"<value>{escape(_value(v))}</value>" for v in (value if isinstance(value, list) else [value]))
        + "</field>"
        for var, value in form.items()
    )
    return f"<command xmlns='{NS_COMMANDS}'{attrs}><x xmlns='{NS_DATA}' type='submit'>{fields}</x></command>"


def parse_command_reply(reply: ET.Element, sessionid: str | None = None) -> AdhocResult:
    result = AdhocResult(listed=False, commands={}, sessionid=sessionid, xml=to_xml(reply))
    result.stages.append(result.xml)
    if reply.get("type") == "error":
        result.error = Outcome.from_reply(reply)
        return result
    cmd = reply.find(f"{{{NS_COMMANDS}}}command")
    if cmd is None:
        return result
    result.status = cmd.get("status")
    result.sessionid = cmd.get("sessionid") or sessionid
    actions = cmd.find(f"{{{NS_COMMANDS}}}actions")
    result.actions = [local(a.tag) for a in actions] if actions is not None else []
    if actions is not None and actions.get("execute"):
        result.actions.insert(0, "execute=" + actions.get("execute"))
    result.form = parse_form(cmd.find(f"{{{NS_DATA}}}x"))
    result.notes = [(n.get("type"), n.text or "") for n in cmd.findall(f"{{{NS_COMMANDS}}}note")]
    return result


def steps(server, jid: str, password: str, node: str, stages: list, to: str | None = None) -> list[AdhocResult]:
    """Runs `stages` of one command session: each stage is (action, form_values or None).

    The session id of a reply is carried into the next stage. Returns one result per stage;
    a stage after an error or a completed reply is still sent (as a client might).
    """
    to = to or jid.split("/")[0].split("@")[-1]
    results = []
    with OnlineClient(server, jid, password, presence=False, fetch_roster=False) as c:
        sessionid = None
        for action, form in stages:
            reply = c.iq("set", to, command_xml(node, action, sessionid, form))
            result = parse_command_reply(reply, sessionid)
            sessionid = result.sessionid
            results.append(result)
    return results


def execute(server, jid: str, password: str, node: str, action: str | None = "execute",
            form: dict | None = None, to: str | None = None) -> AdhocResult:
    """One request: <command node action> with an optional submitted form."""
    return steps(server, jid, password, node, [(action, form)], to)[0]


@dataclass
class NodeInfo:
    outcome: Outcome
    identities: list  # [(category, type, name)]
    features: list


def disco_info(server, jid: str, password: str, node: str, to: str | None = None) -> NodeInfo:
    to = to or jid.split("/")[0].split("@")[-1]
    with OnlineClient(server, jid, password, presence=False, fetch_roster=False) as c:
        reply = c.iq("get", to, f"<query xmlns='{NS_DISCO_INFO}' node={quoteattr(node)}/>")
    query = reply.find(f"{{{NS_DISCO_INFO}}}query")
    identities = [(i.get("category"), i.get("type"), i.get("name"))
                  for i in (query.findall(f"{{{NS_DISCO_INFO}}}identity") if query is not None else [])]
    features = [f.get("var") for f in (query.findall(f"{{{NS_DISCO_INFO}}}feature") if query is not None else [])]
    return NodeInfo(Outcome.from_reply(reply), identities, features)
