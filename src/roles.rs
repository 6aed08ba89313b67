//! The roles an invite grants, as `core.roles.*`: read in either shape, stored in the shape of
//! the running release (`invites_rules::roles`).

use mlua::{Lua, Table, Value};

use invites_rules::roles::{RoleShape, role_names};

use crate::convert::role_entries;

/// `core.roles.names(roles)` -> { role, ... }: the names of a roles value (a `{role = true}` set
/// or a `{"role"}` list), listed ones first.
pub(crate) fn roles_names(lua: &Lua, roles: Value) -> mlua::Result<Table> {
    lua.create_sequence_from(role_names(role_entries(&roles)))
}

/// `core.roles.stored(list, version)` -> what to store as `additional_data.roles` for Prosody
/// `version`: the list (13), a set (0.12), nil when empty.
pub(crate) fn roles_stored(lua: &Lua, (roles, version): (Value, String)) -> mlua::Result<Value> {
    let names = role_names(role_entries(&roles));
    match RoleShape::of_release(&version) {
        RoleShape::List => Ok(Value::Table(lua.create_sequence_from(names)?)),
        RoleShape::Set if names.is_empty() => Ok(Value::Nil),
        RoleShape::Set => Ok(Value::Table(lua.create_table_from(names.into_iter().map(|name| (name, true)))?)),
    }
}
