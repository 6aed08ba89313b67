//! mod_invites_adhoc: the XEP-0401 command rules of `invites_rules::adhoc`, as `core.adhoc.*`.

use mlua::{Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use invites_rules::adhoc::{self, AccountPlan, Authority, NameFacts, Requester};
use invites_rules::roles::RoleEntry;

use crate::convert::{fail, opt_plain_string, role_entries, seconds, truthy};

/// Role names of a roles table: `{role = true}` (0.12's `roles` store) or `{"role"}`.
fn role_set(value: &Value) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for entry in role_entries(value) {
        match entry {
            RoleEntry::Listed(name) | RoleEntry::Keyed(name, true) => {
                names.insert(name);
            }
            RoleEntry::Keyed(_, false) => {}
        }
    }
    names
}

/// `{ local, admin, roles }` (0.12) or `{ local, permissions = { invite_users, create_accounts } }` (13).
fn requester_from(table: &Table) -> mlua::Result<Requester> {
    let local = truthy(&table.raw_get("local")?);
    let authority = match table.raw_get::<Value>("permissions")? {
        Value::Table(answers) => Authority::Permissions {
            invite_users: truthy(&answers.raw_get("invite_users")?),
            create_accounts: truthy(&answers.raw_get("create_accounts")?),
        },
        _ => Authority::Roles { admin: truthy(&table.raw_get("admin")?), roles: role_set(&table.raw_get("roles")?) },
    };
    Ok(Requester { local, authority })
}

/// The configured policy of one host, built once by the shim.
pub(crate) struct AdhocPolicy(adhoc::Policy);

impl UserData for AdhocPolicy {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // contact_command_access() -> "local_user" | "admin"
        methods.add_method("contact_command_access", |_, this, ()| Ok(this.0.contact_command_access().as_str()));

        // may_invite_new_users(requester) -> boolean
        methods.add_method("may_invite_new_users", |_, this, requester: Table| {
            Ok(this.0.may_invite_new_users(&requester_from(&requester)?))
        });

        // may_create_accounts(requester) -> boolean
        methods.add_method("may_create_accounts", |_, this, requester: Table| {
            Ok(this.0.may_create_accounts(&requester_from(&requester)?))
        });

        // contact_invite(requester, registration_possible) -> allow_registration | nil, code, text
        methods.add_method("contact_invite", |lua, this, (requester, possible): (Table, bool)| {
            match this.0.contact_invite(&requester_from(&requester)?, possible) {
                Ok(allow) => Ok(MultiValue::from_iter([Value::Boolean(allow)])),
                Err(e) => fail(lua, &e),
            }
        });
    }
}

/// `core.adhoc.policy(options)`; options carry the stock option names, role lists as arrays.
pub(crate) fn adhoc_policy(_lua: &Lua, options: Table) -> mlua::Result<AdhocPolicy> {
    let flag = |key: &str, default: bool| -> mlua::Result<bool> {
        Ok(match options.raw_get::<Value>(key)? {
            Value::Nil => default,
            value => truthy(&value),
        })
    };
    let roles = |key: &str| -> mlua::Result<std::collections::BTreeSet<String>> { Ok(role_set(&options.raw_get(key)?)) };
    Ok(AdhocPolicy(adhoc::Policy {
        allow_user_invites: flag("allow_user_invites", false)?,
        allow_contact_invites: flag("allow_contact_invites", true)?,
        allow_roles: roles("allow_user_invites_by_roles")?,
        deny_roles: roles("deny_user_invites_by_roles")?,
        account_roles: roles("invites_account_roles")?,
    }))
}

/// `core.adhoc.requested_username(raw, prepped)` -> name | false (blank: any name) | nil, code, text
pub(crate) fn adhoc_requested_username(lua: &Lua, (raw, prepped): (Value, Value)) -> mlua::Result<MultiValue> {
    let raw = opt_plain_string(&raw);
    let prepped = opt_plain_string(&prepped);
    match adhoc::requested_username(raw.as_deref(), prepped.as_deref()) {
        Ok(Some(name)) => Ok(MultiValue::from_iter([Value::String(lua.create_string(name)?)])),
        Ok(None) => Ok(MultiValue::from_iter([Value::Boolean(false)])),
        Err(e) => fail(lua, &e),
    }
}

/// `core.adhoc.account_invite(username|false, { exists, reserved }, roster_subscription, requester_local)`
/// -> { username?, subscribe } | nil, code, text
pub(crate) fn adhoc_account_invite(
    lua: &Lua,
    (username, facts, subscribe, local): (Value, Table, bool, bool),
) -> mlua::Result<MultiValue> {
    let username = opt_plain_string(&username);
    let facts = NameFacts { exists: truthy(&facts.raw_get("exists")?), reserved: truthy(&facts.raw_get("reserved")?) };
    match adhoc::account_invite(username.as_deref(), facts, subscribe, local) {
        Ok(AccountPlan { username, subscribe }) => {
            let plan = lua.create_table_with_capacity(0, 2)?;
            plan.set("username", username)?;
            plan.set("subscribe", subscribe)?;
            Ok(MultiValue::from_iter([Value::Table(plan)]))
        }
        Err(e) => fail(lua, &e),
    }
}

/// `core.adhoc.reset_account(accountjid, host)` -> username | nil, code, text
pub(crate) fn adhoc_reset_account(lua: &Lua, (jid, host): (Value, String)) -> mlua::Result<MultiValue> {
    let jid = opt_plain_string(&jid);
    match adhoc::reset_account(jid.as_deref(), &host) {
        Ok(username) => Ok(MultiValue::from_iter([Value::String(lua.create_string(username)?)])),
        Err(e) => fail(lua, &e),
    }
}

/// `core.adhoc.invitation_fields(uri, landing_page?, expires)` -> util.dataforms layout fields
pub(crate) fn adhoc_invitation_fields(lua: &Lua, (uri, landing_page, expires): (String, Value, Value)) -> mlua::Result<Table> {
    let landing_page = opt_plain_string(&landing_page);
    let expires = seconds(&expires).ok_or_else(|| mlua::Error::runtime("invitation_fields: expires must be a number"))?;
    let fields = adhoc::invitation_fields(&uri, landing_page.as_deref(), expires);
    let list = lua.create_table_with_capacity(fields.len(), 0)?;
    for field in fields {
        let entry = lua.create_table_with_capacity(0, 6)?;
        entry.set("name", field.var)?;
        entry.set("var", field.var)?;
        entry.set("type", field.kind)?;
        entry.set("label", field.label)?;
        entry.set("desc", field.desc)?;
        entry.set("value", field.value)?;
        list.push(entry)?;
    }
    Ok(list)
}
