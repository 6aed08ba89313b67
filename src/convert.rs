//! Lua tables to core types and back: the field readers, stored records, validated invites,
//! storage keys and the `nil, code[, text]` failure convention.

use mlua::{Either, Lua, LuaString, MultiValue, Table, Value};

use invites_rules::Error;
use invites_rules::invite::ValidatedInvite;
use invites_rules::plans::{Standing, StoreKey, Usage, UsePlan};
use invites_rules::record::InviteType;
use invites_rules::record::{Field, InviteFacts, MaxUses, Record};
use invites_rules::roles::RoleEntry;

/// Declares the table keys the binding reads and writes, made into Lua strings once per host
/// object: a ready string is pushed without hashing and interning it again on every call.
macro_rules! field_names {
    ($($field:ident = $name:literal),* $(,)?) => {
        pub(crate) struct FieldNames {
            $(pub(crate) $field: LuaString,)*
        }

        impl FieldNames {
            pub(crate) fn new(lua: &Lua) -> mlua::Result<Self> {
                Ok(Self { $($field: lua.create_string($name)?,)* })
            }
        }
    };
}

field_names! {
    kind = "type",
    jid = "jid",
    token = "token",
    allow_registration = "allow_registration",
    uri = "uri",
    created_at = "created_at",
    expires = "expires",
    reusable = "reusable",
    username = "username",
    inviter = "inviter",
    additional_data = "additional_data",
    landing_page = "landing_page",
    roster_subscription = "roster_subscription",
    allow_reset = "allow_reset",
    source = "source",
    max_uses = "max_uses",
    rooms = "rooms",
    user = "user",
}

/// `core.codes`: every error code by its name with `_` for `-` (`codes.token_invalid` is
/// `"token-invalid"`), so the shims name codes through the core; reading a name that is no code
/// raises, so a misspelt one fails where it is read instead of never matching.
pub(crate) fn codes(lua: &Lua) -> mlua::Result<Table> {
    let codes = lua.create_table()?;
    for code in Error::CODES {
        codes.raw_set(code.replace('-', "_"), *code)?;
    }
    let strict = lua.create_table()?;
    strict.set(
        "__index",
        lua.create_function(|_, (_, name): (Value, Value)| -> mlua::Result<()> {
            Err(mlua::Error::runtime(format!("no such error code: {}", name.to_string().unwrap_or_default())))
        })?,
    )?;
    codes.set_metatable(Some(strict))?;
    Ok(codes)
}

/// `nil, code` for an expected failure: `code` is an [`Error::code`]. For mod_invites' public
/// API, whose `nil, "<code>"` is Prosody's contract; everything else answers with [`fail`].
pub(crate) fn failure(lua: &Lua, code: &str) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([Value::Nil, Value::String(lua.create_string(code)?)]))
}

/// `nil, code, text` for an expected failure or a refusal: the error's code and its reason.
pub(crate) fn fail(lua: &Lua, error: &Error) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        Value::Nil,
        Value::String(lua.create_string(error.code())?),
        Value::String(lua.create_string(error.to_string())?),
    ]))
}

/// The error a code from Lua names (`nil, code[, text]` handed back), read once here.
pub(crate) fn error_of(code: &Value, text: &Value) -> Error {
    Error::from_code(&opt_plain_string(code).unwrap_or_default(), opt_plain_string(text).as_deref())
}

/// Reads a Lua number as whole seconds (Prosody stores integers; SQL may hand back floats).
pub(crate) fn seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        Value::Number(n) if n.is_finite() => Some(n.trunc() as i64),
        _ => None,
    }
}

/// The fields of a stored record the binding looks at, read from the table once.
pub(crate) struct RecordFields {
    kind: Value,
    jid: Value,
    allow_registration: Value,
    uri: Value,
    expires: Value,
    created_at: Value,
    reusable: Value,
    additional_data: Value,
    landing_page: Value,
}

impl RecordFields {
    pub(crate) fn read(names: &FieldNames, record: &Value) -> Result<Option<Self>, Error> {
        let table = match record {
            Value::Nil => return Ok(None),
            Value::Table(table) => table,
            _ => return Err(Error::BadField("record")),
        };
        let get = |key: &LuaString| table.raw_get::<Value>(key).unwrap_or(Value::Nil);
        Ok(Some(Self {
            kind: get(&names.kind),
            jid: get(&names.jid),
            allow_registration: get(&names.allow_registration),
            uri: get(&names.uri),
            expires: get(&names.expires),
            created_at: get(&names.created_at),
            reusable: get(&names.reusable),
            additional_data: get(&names.additional_data),
            landing_page: get(&names.landing_page),
        }))
    }

    /// The record stored under `token`. Fields the rules need (`type`, `jid`, `expires`, a `uri`
    /// that is there) must be well-formed; the others read as absent when they are junk.
    pub(crate) fn record(&self, names: &FieldNames, token: &str) -> Result<Record, Error> {
        let text = |value: &Value, key: &'static str| -> Result<Option<String>, Error> {
            match value {
                Value::Nil => Ok(None),
                Value::String(s) => s.to_str().map(|s| Some(s.to_owned())).map_err(|_| Error::BadField(key)),
                _ => Err(Error::BadField(key)),
            }
        };
        let kind = text(&self.kind, "type")?.as_deref().and_then(InviteType::parse).ok_or(Error::BadField("type"))?;
        let jid = text(&self.jid, "jid")?.ok_or(Error::BadField("jid"))?;
        let expires = seconds(&self.expires).ok_or(Error::BadField("expires"))?;
        let (allow_reset, roster_subscription) = match &self.additional_data {
            Value::Table(data) => (
                truthy(&data.raw_get(&names.allow_reset).unwrap_or(Value::Nil)),
                match data.raw_get::<Value>(&names.roster_subscription) {
                    Ok(Value::String(creator)) => creator.to_str().ok().map(|s| s.to_owned()),
                    _ => None,
                },
            ),
            _ => (false, None),
        };
        Ok(Record {
            kind,
            jid,
            token: token.to_owned(),
            allow_registration: matches!(self.allow_registration, Value::Boolean(true)),
            uri: text(&self.uri, "uri")?,
            created_at: seconds(&self.created_at),
            expires,
            reusable: match self.reusable {
                Value::Boolean(reusable) => Some(reusable),
                _ => None,
            },
            allow_reset,
            roster_subscription,
        })
    }
}

/// The host-level record stored under `token` as read: `None` for `nil`, an error when it is not
/// a record the rules can read (the core decides what that means).
pub(crate) fn read_record(names: &FieldNames, token: &str, value: &Value) -> Result<Option<Record>, Error> {
    RecordFields::read(names, value)?.map(|fields| fields.record(names, token)).transpose()
}

/// Every record of a whole host-level map, as read (entries not keyed by a string token are not
/// invites and are left out).
pub(crate) fn host_records(names: &FieldNames, map: &Table) -> Vec<Result<Record, Error>> {
    map.pairs::<Value, Value>()
        .flatten()
        .filter_map(|(token, value)| match token {
            Value::String(token) => {
                let token = token.to_str().ok()?;
                read_record(names, &token, &value).transpose()
            }
            _ => None,
        })
        .collect()
}

pub(crate) fn opt_string(value: Value) -> mlua::Result<Option<String>> {
    match value {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_str()?.to_owned())),
        other => Err(mlua::Error::runtime(format!("expected a string, got {}", other.type_name()))),
    }
}

pub(crate) fn keys_table(lua: &Lua, names: &FieldNames, keys: Vec<StoreKey>) -> mlua::Result<Table> {
    let list = lua.create_table_with_capacity(keys.len(), 0)?;
    for (i, key) in keys.into_iter().enumerate() {
        let entry = lua.create_table_with_capacity(0, 2)?;
        if let Some(user) = key.user {
            entry.raw_set(&names.user, user)?;
        }
        entry.raw_set(&names.token, key.token)?;
        list.raw_set(i + 1, entry)?;
    }
    Ok(list)
}

/// A use plan as Lua sees it: `{ keys = { {user=?, token=}, ... }, consume = bool }`.
pub(crate) fn use_plan_table(lua: &Lua, names: &FieldNames, plan: UsePlan) -> mlua::Result<Table> {
    let table = lua.create_table_with_capacity(0, 2)?;
    table.set("keys", keys_table(lua, names, plan.keys)?)?;
    table.set("consume", plan.consumed)?;
    Ok(table)
}

/// The expiry of a value of a host-level map: a record's `expires`, or the value itself (a
/// user-level entry is its expiry).
pub(crate) fn expiry_of(value: &Value) -> mlua::Result<Option<i64>> {
    Ok(match value {
        Value::Table(record) => seconds(&record.raw_get("expires")?),
        other => seconds(other),
    })
}

/// `(token, expires)` pairs of a map whose values are expiry numbers or records.
pub(crate) fn expiries(map: &Table) -> mlua::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for pair in map.pairs::<Value, Value>() {
        let (key, value) = pair?;
        let Value::String(token) = key else { continue };
        if let (Ok(token), Some(expires)) = (token.to_str(), expiry_of(&value)?) {
            out.push((token.to_owned(), expires));
        }
    }
    Ok(out)
}

pub(crate) fn token_list(lua: &Lua, tokens: Vec<&str>) -> mlua::Result<Table> {
    lua.create_sequence_from(tokens)
}

/// The validated invite as a Lua table. Strings the record (or the caller) already holds are
/// passed back as those Lua values, not made again.
pub(crate) fn validated_table(
    lua: &Lua,
    names: &FieldNames,
    invite: ValidatedInvite,
    token: &Value,
    username: &Value,
    record: Option<&RecordFields>,
) -> mlua::Result<Table> {
    let same = |value: &Value, text: &str| matches!(value, Value::String(s) if s.as_bytes() == text.as_bytes());
    let text = |value: Option<&Value>, text: String| -> Either<String, Value> {
        match value {
            Some(value) if same(value, &text) => Either::Right(value.clone()),
            _ => Either::Left(text),
        }
    };
    let mut fields: Vec<(&LuaString, Either<String, Value>)> = Vec::with_capacity(12);
    fields.push((&names.token, text(Some(token), invite.token)));
    fields.push((&names.kind, text(record.map(|r| &r.kind), invite.kind.as_str().to_owned())));
    if let Some(name) = invite.username {
        fields.push((&names.username, text(Some(username), name)));
    }
    if let Some(inviter) = invite.inviter {
        fields.push((&names.inviter, Either::Left(inviter)));
    }
    fields.push((&names.jid, text(record.map(|r| &r.jid), invite.jid)));
    fields.push((&names.uri, text(record.map(|r| &r.uri), invite.uri)));
    fields.push((&names.expires, Either::Right(Value::Integer(invite.expires))));
    if let Some(created_at) = invite.created_at {
        fields.push((&names.created_at, Either::Right(Value::Integer(created_at))));
    }
    fields.push((&names.reusable, Either::Right(Value::Boolean(invite.reusable))));
    fields.push((&names.allow_registration, Either::Right(Value::Boolean(invite.host_level))));
    if let Some(record) = record {
        // Passed through by reference: consumers read and may extend these.
        fields.push((&names.additional_data, Either::Right(record.additional_data.clone())));
        fields.push((&names.landing_page, Either::Right(record.landing_page.clone())));
    }
    lua.create_table_from(fields)
}

/// The validated invite `get` returned, read back (raw fields: what `validated_table` wrote).
pub(crate) fn validated_from_table(names: &FieldNames, table: &Table) -> mlua::Result<ValidatedInvite> {
    let kind: String = table.raw_get(&names.kind)?;
    let kind = InviteType::parse(&kind).ok_or_else(|| mlua::Error::runtime("not a validated invite"))?;
    Ok(ValidatedInvite {
        token: table.raw_get(&names.token)?,
        kind,
        username: table.raw_get(&names.username)?,
        inviter: table.raw_get(&names.inviter)?,
        jid: table.raw_get(&names.jid)?,
        uri: table.raw_get(&names.uri)?,
        expires: table.raw_get(&names.expires)?,
        created_at: table.raw_get(&names.created_at)?,
        reusable: table.raw_get::<Option<bool>>(&names.reusable)?.unwrap_or(false),
        host_level: table.raw_get::<Option<bool>>(&names.allow_registration)?.unwrap_or(false),
    })
}

pub(crate) trait IntoLuaValue {
    fn into_lua_value(self, lua: &Lua) -> mlua::Result<Value>;
}

impl IntoLuaValue for Option<String> {
    fn into_lua_value(self, lua: &Lua) -> mlua::Result<Value> {
        self.map_or(Ok(Value::Nil), |s| lua.create_string(s).map(Value::String))
    }
}

/// The one reader of `max_uses` (in `additional_data` or an audit record): an integer is a whole
/// number, anything else but `nil` is not (a float, even 2.0). The rules say what it limits
/// ([`MaxUses::limit`]).
pub(crate) fn read_max_uses(value: &Value) -> MaxUses {
    match value {
        Value::Nil => MaxUses::Absent,
        Value::Integer(n) => MaxUses::Whole(*n),
        _ => MaxUses::NotWhole,
    }
}

/// What the shim read of an invite just before a registration decides or a use is recorded
/// (`{ record = host-level record?, audit = audit record? }`, `false` when storage failed:
/// `None`), with the use limit of the validated invite's `additional_data`. An audit record
/// whose `uses` is not a list is a bad field.
pub(crate) fn read_standing(names: &FieldNames, invite: &Table, standing: &Value) -> Result<Option<Standing>, Error> {
    let Value::Table(standing) = standing else { return Ok(None) };
    let stored = !matches!(standing.raw_get::<Value>("record"), Ok(Value::Nil) | Err(_));
    let uses = match standing.raw_get::<Value>("audit") {
        Ok(Value::Table(audit)) => match audit.raw_get::<Value>("uses") {
            Ok(Value::Table(uses)) => u32::try_from(uses.raw_len()).unwrap_or(u32::MAX),
            _ => return Err(Error::BadField("uses")),
        },
        _ => 0,
    };
    let limit = match invite.raw_get::<Value>(&names.additional_data) {
        Ok(Value::Table(data)) => read_max_uses(&data.raw_get(&names.max_uses).unwrap_or(Value::Nil)).limit(),
        _ => None,
    };
    Ok(Some(Standing { stored, usage: Usage { limit, uses } }))
}

/// A string field of a table, or `None` for anything else (stored data may be junk).
pub(crate) fn str_field(table: &Table, key: &str) -> Option<String> {
    match table.raw_get::<Value>(key) {
        Ok(Value::String(s)) => s.to_str().ok().map(|s| s.to_owned()),
        _ => None,
    }
}

/// A flag of stored or gathered facts where absent means false (Lua's `nil`): room facts,
/// `reusable` of an audit record.
pub(crate) fn bool_field(table: &Table, key: &str) -> bool {
    matches!(table.raw_get::<Value>(key), Ok(Value::Boolean(true)))
}

/// A boolean the shim must pass: missing or not a boolean is an error naming it, never a default
/// (a misspelt `invite_only` must not mean open registration).
pub(crate) fn required_bool(table: &Table, key: &'static str) -> Result<bool, Error> {
    match table.raw_get::<Value>(key) {
        Ok(Value::Boolean(value)) => Ok(value),
        _ => Err(Error::BadField(key)),
    }
}

/// A string the shim must pass (see [`required_bool`]).
pub(crate) fn required_str(table: &Table, key: &'static str) -> Result<String, Error> {
    str_field(table, key).ok_or(Error::BadField(key))
}

/// `additional_data.roles` as a map (`{role = true}`) or an array (`{"role"}`), array part first
/// and in order.
pub(crate) fn role_entries(value: &Value) -> Vec<RoleEntry> {
    let Value::Table(roles) = value else { return Vec::new() };
    let mut entries: Vec<RoleEntry> =
        roles.sequence_values::<Value>().flatten().filter_map(|v| opt_plain_string(&v)).map(RoleEntry::Listed).collect();
    for (key, value) in roles.pairs::<Value, Value>().flatten() {
        if let Value::String(name) = key
            && let Ok(name) = name.to_str()
        {
            entries.push(RoleEntry::Keyed(name.to_owned(), !matches!(value, Value::Nil | Value::Boolean(false))));
        }
    }
    entries
}

pub(crate) fn opt_plain_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => s.to_str().ok().map(|s| s.to_owned()),
        _ => None,
    }
}

/// Lua truthiness: `usermanager.is_admin` answers with whatever the roles table holds.
pub(crate) fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Nil | Value::Boolean(false))
}

/// A field of an invite table as classification reads it. With `numbers` (`inviter` and
/// `username`, which creators are made of), a number becomes the string Lua makes of it; without
/// (`jid`, which is split as a JID), it is unusable.
enum FieldValue {
    Missing,
    Text(LuaString),
    Other,
}

impl FieldValue {
    fn read(lua: &Lua, table: &Table, key: &LuaString, numbers: bool) -> mlua::Result<Self> {
        Ok(match table.get::<Value>(key)? {
            Value::Nil | Value::Boolean(false) => Self::Missing,
            Value::String(s) => Self::Text(s),
            number @ (Value::Integer(_) | Value::Number(_)) if numbers => match lua.coerce_string(number)? {
                Some(s) => Self::Text(s),
                None => Self::Other,
            },
            _ => Self::Other,
        })
    }
}

/// The classification facts of any invite table (stored record, new or validated invite), read
/// with ordinary indexing; `classify` calls `with` on them.
pub(crate) fn with_invite_facts<R>(
    lua: &Lua,
    names: &FieldNames,
    invite: &Table,
    with: impl FnOnce(&InviteFacts<'_>) -> R,
) -> mlua::Result<R> {
    let kind = FieldValue::read(lua, invite, &names.kind, false)?;
    let jid = FieldValue::read(lua, invite, &names.jid, false)?;
    let inviter = FieldValue::read(lua, invite, &names.inviter, true)?;
    let username = FieldValue::read(lua, invite, &names.username, true)?;
    let allow_registration = truthy(&invite.get(&names.allow_registration)?);
    let (mut allow_reset, mut source, mut max_uses) = (false, None, MaxUses::Absent);
    if let Value::Table(data) = invite.get(&names.additional_data)? {
        allow_reset = truthy(&data.get(&names.allow_reset)?);
        if let Value::String(s) = data.get(&names.source)? {
            source = Some(s);
        }
        max_uses = read_max_uses(&data.get(&names.max_uses)?);
    }
    let bytes = |value: &FieldValue| match value {
        FieldValue::Text(s) => Some(s.as_bytes()),
        _ => None,
    };
    let (kind_bytes, jid_bytes, inviter_bytes, username_bytes) = (bytes(&kind), bytes(&jid), bytes(&inviter), bytes(&username));
    let source_bytes = source.as_ref().map(LuaString::as_bytes);
    fn field<'a>(value: &FieldValue, text: &'a Option<mlua::BorrowedBytes>) -> Field<'a> {
        match (value, text) {
            (FieldValue::Missing, _) => Field::Missing,
            (FieldValue::Text(_), Some(text)) => Field::Text(text),
            _ => Field::Other,
        }
    }
    let facts = InviteFacts {
        kind: field(&kind, &kind_bytes),
        allow_registration,
        allow_reset,
        source: source_bytes.as_deref(),
        max_uses,
        jid: field(&jid, &jid_bytes),
        inviter: field(&inviter, &inviter_bytes),
        username: field(&username, &username_bytes),
    };
    Ok(with(&facts))
}

/// What the rules check of a new invite's `additional_data`: `max_uses` as given, whether it
/// names an account to reset, whether it carries group chats.
pub(crate) fn requested_data(names: &FieldNames, additional_data: &Value) -> mlua::Result<(MaxUses, bool, bool)> {
    let Value::Table(data) = additional_data else { return Ok((MaxUses::Absent, false, false)) };
    let max_uses = read_max_uses(&data.raw_get(&names.max_uses)?);
    let reset = truthy(&data.raw_get(&names.allow_reset)?);
    let rooms =
        matches!(data.raw_get::<Value>(&names.rooms)?, Value::Table(rooms) if !matches!(rooms.raw_get::<Value>(1)?, Value::Nil));
    Ok((max_uses, reset, rooms))
}
