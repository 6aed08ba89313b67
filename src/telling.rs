//! `core.notify`, `core.tree` and `core.check`: telling the inviter, who invited whom, and the
//! configuration check.

use std::collections::BTreeMap;

use mlua::{Lua, MultiValue, Table, Value};

use invites_rules::check::{self, Facts};
use invites_rules::notify::{self, Use, UseFacts};
use invites_rules::tree::{self, AuditUse, Edge, Tree};

use crate::convert::{bool_field, fail, seconds, str_field};

fn strings(table: &Table, key: &str) -> mlua::Result<Vec<String>> {
    let Value::Table(list) = table.raw_get::<Value>(key)? else { return Ok(Vec::new()) };
    Ok(list
        .sequence_values::<Value>()
        .flatten()
        .filter_map(|v| v.as_string().and_then(|s| s.to_str().ok().map(|s| s.to_owned())))
        .collect())
}

/// `core.notify.recipient({ enabled, host, creator, how, account, creator_exists })`
///   -> the bare JID to tell | nil, why (for the debug log)
pub(crate) fn notify_recipient(lua: &Lua, facts: Table) -> mlua::Result<MultiValue> {
    let text = |key| str_field(&facts, key).unwrap_or_default();
    let (host, creator, how, account) = (text("host"), text("creator"), text("how"), text("account"));
    let facts = UseFacts {
        enabled: bool_field(&facts, "enabled"),
        host: &host,
        creator: &creator,
        how: &how,
        account: &account,
        creator_exists: bool_field(&facts, "creator_exists"),
    };
    Ok(match notify::recipient(&facts) {
        Ok(jid) => MultiValue::from_iter([Value::String(lua.create_string(jid)?)]),
        Err(silence) => MultiValue::from_iter([Value::Nil, Value::String(lua.create_string(silence.as_str())?)]),
    })
}

/// `core.notify.message(candidates, how, account, room_results?)` -> text, lang
/// candidates: language tags, most telling first; room_results: `{ { jid, outcome }, ... }`.
pub(crate) fn notify_message(
    lua: &Lua,
    (candidates, how, account, results): (Table, String, String, Option<Table>),
) -> mlua::Result<MultiValue> {
    let tags: Vec<String> = candidates
        .sequence_values::<Value>()
        .flatten()
        .filter_map(|v| v.as_string().and_then(|s| s.to_str().ok().map(|s| s.to_owned())))
        .collect();
    let language = notify::pick_language(tags.iter().map(String::as_str));
    let mut rooms = Vec::new();
    if let Some(results) = results {
        for result in results.sequence_values::<Table>().flatten() {
            if let (Some(jid), Some(outcome)) = (str_field(&result, "jid"), str_field(&result, "outcome"))
                && notify::joined(&outcome)
            {
                rooms.push(jid);
            }
        }
    }
    let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
    let text = notify::message(language, Use::parse(&how).unwrap_or(Use::Registered), &account, &rooms);
    Ok(MultiValue::from_iter([Value::String(lua.create_string(text)?), Value::String(lua.create_string(language.tag())?)]))
}

/// The edges among `{ { token, creator, account, at, how }, ... }`.
fn edges_of(uses: &Table) -> Vec<Edge> {
    let mut list = Vec::new();
    for entry in uses.sequence_values::<Table>().flatten() {
        list.push(AuditUse {
            token: str_field(&entry, "token").unwrap_or_default(),
            creator: str_field(&entry, "creator").unwrap_or_default(),
            account: str_field(&entry, "account").unwrap_or_default(),
            at: entry.raw_get::<Value>("at").ok().as_ref().and_then(seconds).unwrap_or(0),
            how: str_field(&entry, "how").unwrap_or_default(),
        });
    }
    tree::edges(list)
}

/// `core.tree.build(uses, root)` -> { lines = {...}, members = { root, accounts... }, size }
pub(crate) fn tree_build(lua: &Lua, (uses, root): (Table, String)) -> mlua::Result<Table> {
    let tree = Tree::build(&edges_of(&uses), &root);
    let members = std::iter::once(tree.root.clone()).chain(tree.nodes.iter().map(|n| n.account.clone()));
    let table = lua.create_table()?;
    table.set("lines", lua.create_sequence_from(tree.render())?)?;
    table.set("members", lua.create_sequence_from(members)?)?;
    table.set("size", tree.size())?;
    Ok(table)
}

/// `core.tree.cap_check(uses, creator, max)` -> true | nil, "quota-exceeded", text
pub(crate) fn tree_cap_check(lua: &Lua, (uses, creator, max): (Table, String, u32)) -> mlua::Result<MultiValue> {
    match tree::cap_check(&edges_of(&uses), &creator, max) {
        Ok(()) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
        Err(e) => fail(lua, &e),
    }
}

/// `core.check(facts)` -> { { code, text }, ... } (see invites_rules::check::Facts for the fields)
pub(crate) fn check(lua: &Lua, t: Table) -> mlua::Result<Table> {
    let mut pending_rooms = BTreeMap::new();
    if let Value::Table(rooms) = t.raw_get::<Value>("pending_rooms")? {
        for (room, count) in rooms.pairs::<String, u32>().flatten() {
            pending_rooms.insert(room, count);
        }
    }
    let loaded = match t.raw_get::<Value>("loaded")? {
        Value::Table(_) => Some(strings(&t, "loaded")?),
        _ => None,
    };
    let auth_creates = match t.raw_get::<Value>("auth_creates")? {
        Value::Boolean(b) => Some(b),
        _ => None,
    };
    let facts = Facts {
        host: str_field(&t, "host").unwrap_or_default(),
        authentication: str_field(&t, "authentication").unwrap_or_else(|| "internal_hashed".to_owned()),
        auth_creates,
        enabled: strings(&t, "enabled")?,
        loaded,
        invite_only: bool_field(&t, "invite_only"),
        allow_registration: bool_field(&t, "allow_registration"),
        invites_page: str_field(&t, "invites_page"),
        http_external_url: str_field(&t, "http_external_url"),
        http_host: str_field(&t, "http_host"),
        muc_components: strings(&t, "muc_components")?,
        pending_rooms,
        exempt: strings(&t, "exempt")?,
        exempt_option: str_field(&t, "exempt_option").unwrap_or_else(|| "invites_preauth_exempt".to_owned()),
        require_encryption: bool_field(&t, "require_encryption"),
        notify_inviter: bool_field(&t, "notify_inviter"),
    };
    let out = lua.create_table()?;
    for finding in check::findings(&facts) {
        out.push(lua.create_table_from([("code", finding.code.to_owned()), ("text", finding.text)])?)?;
    }
    Ok(out)
}

/// `core.tree.is_account(creator)` -> whether an audit record's creator names an account (node@host)
pub(crate) fn tree_is_account(_lua: &Lua, creator: String) -> mlua::Result<bool> {
    Ok(notify::creator_account(&creator).is_some())
}
