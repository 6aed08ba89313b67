//! `core.rooms`: the group chats an invite carries.

use mlua::{Lua, MultiValue, Table, Value};

use invites_rules::Error;
use invites_rules::rooms::{self, RoomFacts, RoomInput};

use crate::convert::{bool_field, error_of, fail, opt_plain_string, str_field};

/// `core.rooms.normalise(inputs, max)` with inputs `{ { given, prepped?, autojoin? }, ... }`
///   -> `{ { jid, autojoin }, ... }` | nil, code, text (naming the room)
pub(crate) fn rooms_normalise(lua: &Lua, (inputs, max): (Table, Option<usize>)) -> mlua::Result<MultiValue> {
    let mut list = Vec::new();
    for entry in inputs.sequence_values::<Table>() {
        let entry = entry?;
        let autojoin = match entry.raw_get::<Value>("autojoin")? {
            Value::Boolean(b) => Some(b),
            _ => None,
        };
        list.push(RoomInput {
            given: str_field(&entry, "given").unwrap_or_default(),
            prepped: str_field(&entry, "prepped"),
            autojoin,
        });
    }
    match rooms::normalise(&list, max.unwrap_or(rooms::DEFAULT_MAX_ROOMS)) {
        Ok(rooms) => {
            let out = lua.create_table_with_capacity(rooms.len(), 0)?;
            for room in rooms {
                out.push(lua.create_table_from([
                    ("jid", Value::String(lua.create_string(&room.jid)?)),
                    ("autojoin", Value::Boolean(room.autojoin)),
                ])?)?;
            }
            Ok(MultiValue::from_iter([Value::Table(out)]))
        }
        Err(refusal) => fail(lua, &Error::from(refusal)),
    }
}

/// `core.rooms.check(room, facts, requester)`; facts: booleans `muc_service`, `checked`, `exists`,
/// `destroyed`, `persistent`, `members_only`, `allow_member_invites`; requester `{ privileged = true }`
/// or `{ affiliation = "member" | nil }` -> true, "room" | "service" | nil, code, text (naming the room)
pub(crate) fn rooms_check(lua: &Lua, (room, facts, requester): (String, Table, Table)) -> mlua::Result<MultiValue> {
    let known = RoomFacts {
        muc_service: bool_field(&facts, "muc_service"),
        checked: bool_field(&facts, "checked"),
        exists: bool_field(&facts, "exists"),
        destroyed: bool_field(&facts, "destroyed"),
        persistent: bool_field(&facts, "persistent"),
        members_only: bool_field(&facts, "members_only"),
        allow_member_invites: bool_field(&facts, "allow_member_invites"),
    };
    let who = if bool_field(&requester, "privileged") {
        rooms::Requester::Privileged
    } else {
        rooms::Requester::User(str_field(&requester, "affiliation").as_deref().and_then(rooms::Affiliation::parse))
    };
    match rooms::check(&room, &known, who) {
        Ok(checked) => Ok(MultiValue::from_iter([
            Value::Boolean(true),
            Value::String(lua.create_string(match checked {
                rooms::Checked::Room => "room",
                rooms::Checked::ServiceOnly => "service",
            })?),
        ])),
        Err(refusal) => fail(lua, &Error::from(refusal)),
    }
}

fn affiliation_of(value: &Value) -> Option<rooms::Affiliation> {
    opt_plain_string(value).as_deref().and_then(rooms::Affiliation::parse)
}

/// `core.rooms.plan(affiliation?)` -> "grant" | "keep" | "banned", outcome, welcomes (bookmark
/// and invitation)
pub(crate) fn rooms_plan(_lua: &Lua, current: Value) -> mlua::Result<(&'static str, &'static str, bool)> {
    let step = rooms::plan(affiliation_of(&current));
    let name = match step {
        rooms::Step::Grant => "grant",
        rooms::Step::Keep(_) => "keep",
        rooms::Step::Banned => "banned",
    };
    Ok((name, step.outcome(), step.welcomes()))
}

/// `core.rooms.remove_on_delete(affiliation?)` -> whether deleting the account removes its
/// affiliation
pub(crate) fn rooms_remove_on_delete(_lua: &Lua, current: Value) -> mlua::Result<bool> {
    Ok(rooms::remove_on_delete(affiliation_of(&current)))
}

/// `core.rooms.refused_outcome(code, text?)` -> what an invite's use records for a room `check`
/// refused
pub(crate) fn rooms_refused_outcome(_lua: &Lua, (code, text): (Value, Value)) -> mlua::Result<&'static str> {
    Ok(rooms::redemption_outcome(&error_of(&code, &text)))
}

/// `core.rooms.invitation_mode(option?)` -> "inviter" | "room" | "none" | nil, "bad-request", text
pub(crate) fn rooms_invitation_mode(lua: &Lua, value: Value) -> mlua::Result<MultiValue> {
    match rooms::InvitationMode::parse(opt_plain_string(&value).as_deref()) {
        Ok(mode) => Ok(MultiValue::from_iter([Value::String(lua.create_string(match mode {
            rooms::InvitationMode::Inviter => "inviter",
            rooms::InvitationMode::Room => "room",
            rooms::InvitationMode::None => "none",
        })?)])),
        Err(e) => fail(lua, &e),
    }
}

/// `core.rooms.invitation_sender(mode, inviter?, room)` -> jid | nil
pub(crate) fn rooms_invitation_sender(
    _lua: &Lua,
    (mode, inviter, room): (String, Value, String),
) -> mlua::Result<Option<String>> {
    let mode = rooms::InvitationMode::parse(Some(&mode)).unwrap_or_default();
    Ok(rooms::invitation_sender(mode, opt_plain_string(&inviter).as_deref(), &room))
}

/// `core.rooms.invitation_reason(inviter?, room_name?, room)` -> text
pub(crate) fn rooms_invitation_reason(_lua: &Lua, (inviter, name, room): (Value, Value, String)) -> mlua::Result<String> {
    Ok(rooms::invitation_reason(opt_plain_string(&inviter).as_deref(), opt_plain_string(&name).as_deref(), &room))
}
