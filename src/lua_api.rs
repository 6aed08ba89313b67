//! The Lua binding: the only file that knows about mlua.
//!
//! It converts Lua values to core types and back, draws token bytes from the OS random source,
//! maps [`Error`] to Prosody's `nil, "<code>"` convention and forwards the core's `tracing`
//! diagnostics to the logger the shim passes in. Misuse (a wrong argument type) raises a Lua
//! error; expected failures never do.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use mlua::{Either, Function, Lua, LuaString, MultiValue, Table, UserData, UserDataMethods, Value};
use rand::TryRng;
use rand::rngs::SysRng;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::cli::{self, GenerateCommand, GenerateMode};
use crate::invite::{self, InviteRequest, InviteType, Redemption, Removals, StoreKey, StoredRecord, ValidatedInvite};
use crate::register::{ReservationEntry, Reservations};
use crate::rooms::{self, RoomFacts, RoomInput, RoomRefusal};
use crate::token::{self, TOKEN_BYTES};
use crate::{Error, datetime, lifecycle, ns, period, uri};

type Diagnostics = Arc<Mutex<Vec<(Level, String)>>>;

/// Collects the core's `tracing` events during one call so they can be logged afterwards.
struct Collector(Diagnostics);

#[derive(Default)]
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ =
            if field.name() == "message" { write!(self.0, "{value:?}") } else { write!(self.0, " {}={value:?}", field.name()) };
    }
}

impl<S: Subscriber> Layer<S> for Collector {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = MessageText::default();
        event.record(&mut text);
        if let Ok(mut buffer) = self.0.lock() {
            buffer.push((*event.metadata().level(), text.0));
        }
    }
}

/// Hands the core's `tracing` diagnostics to a module's logger.
struct Tracer {
    log: Function,
    dispatch: Dispatch,
    diagnostics: Diagnostics,
}

/// Per-host state of mod_invites; the shim owns it: the host name, the logger, the index of
/// reserved usernames and the memory of removed records.
struct Invites {
    host: String,
    tracer: Tracer,
    names: FieldNames,
    reservations: RefCell<Reservations>,
    removals: RefCell<Removals>,
}

/// Declares the table keys the binding reads and writes, made into Lua strings once per host
/// object: a ready string is pushed without hashing and interning it again on every call.
macro_rules! field_names {
    ($($field:ident = $name:literal),* $(,)?) => {
        struct FieldNames {
            $($field: LuaString,)*
        }

        impl FieldNames {
            fn new(lua: &Lua) -> mlua::Result<Self> {
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
    user = "user",
}

impl Tracer {
    fn new(log: Function) -> Self {
        let diagnostics: Diagnostics = Arc::default();
        let subscriber = tracing_subscriber::registry().with(Collector(Arc::clone(&diagnostics)));
        Self { log, dispatch: Dispatch::new(subscriber), diagnostics }
    }

    /// Runs `f` with the core's diagnostics captured, then hands them to the module logger.
    fn traced<R>(&self, f: impl FnOnce() -> R) -> mlua::Result<R> {
        let result = tracing::dispatcher::with_default(&self.dispatch, f);
        let drained: Vec<(Level, String)> = match self.diagnostics.lock() {
            Ok(mut buffer) => buffer.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for (level, text) in drained {
            let level = match level {
                Level::ERROR => "error",
                Level::WARN => "warn",
                Level::INFO => "info",
                _ => "debug",
            };
            self.log.call::<()>((level, text))?;
        }
        Ok(result)
    }
}

/// `nil, code` for an expected failure.
fn failure(lua: &Lua, message: &str) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([Value::Nil, Value::String(lua.create_string(message)?)]))
}

fn random_token() -> mlua::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    SysRng.try_fill_bytes(&mut bytes).map_err(|e| mlua::Error::runtime(format!("no random bytes: {e}")))?;
    Ok(token::encode_token(&bytes))
}

/// Reads a Lua number as whole seconds (Prosody stores integers; SQL may hand back floats).
fn seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        Value::Number(n) if n.is_finite() => Some(n.trunc() as i64),
        _ => None,
    }
}

/// The fields of a stored record the binding looks at, read from the table once.
struct RecordFields {
    kind: Value,
    jid: Value,
    uri: Value,
    expires: Value,
    created_at: Value,
    reusable: Value,
    additional_data: Value,
    landing_page: Value,
}

impl RecordFields {
    fn read(names: &FieldNames, record: &Value) -> Result<Option<Self>, Error> {
        let table = match record {
            Value::Nil => return Ok(None),
            Value::Table(table) => table,
            _ => return Err(Error::MalformedRecord("record")),
        };
        let get = |key: &LuaString| table.raw_get::<Value>(key).unwrap_or(Value::Nil);
        Ok(Some(Self {
            kind: get(&names.kind),
            jid: get(&names.jid),
            uri: get(&names.uri),
            expires: get(&names.expires),
            created_at: get(&names.created_at),
            reusable: get(&names.reusable),
            additional_data: get(&names.additional_data),
            landing_page: get(&names.landing_page),
        }))
    }

    fn stored(&self, names: &FieldNames) -> Result<StoredRecord, Error> {
        let text = |value: &Value, key: &'static str| -> Result<Option<String>, Error> {
            match value {
                Value::Nil => Ok(None),
                Value::String(s) => s.to_str().map(|s| Some(s.to_owned())).map_err(|_| Error::MalformedRecord(key)),
                _ => Err(Error::MalformedRecord(key)),
            }
        };
        let kind = text(&self.kind, "type")?.as_deref().and_then(InviteType::parse).ok_or(Error::MalformedRecord("type"))?;
        let jid = text(&self.jid, "jid")?.ok_or(Error::MalformedRecord("jid"))?;
        let expires = seconds(&self.expires).ok_or(Error::MalformedRecord("expires"))?;
        let roster_subscription = match &self.additional_data {
            Value::Table(data) => match data.raw_get::<Value>(&names.roster_subscription) {
                Ok(Value::String(creator)) => creator.to_str().ok().map(|s| s.to_owned()),
                _ => None,
            },
            _ => None,
        };
        Ok(StoredRecord {
            kind,
            jid,
            expires,
            created_at: seconds(&self.created_at),
            uri: text(&self.uri, "uri")?,
            reusable: matches!(self.reusable, Value::Boolean(true)),
            roster_subscription,
        })
    }
}

fn stored_record(names: &FieldNames, value: &Value) -> Result<Option<StoredRecord>, Error> {
    RecordFields::read(names, value)?.map(|fields| fields.stored(names)).transpose()
}

fn opt_string(value: Value) -> mlua::Result<Option<String>> {
    match value {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_str()?.to_owned())),
        other => Err(mlua::Error::runtime(format!("expected a string, got {}", other.type_name()))),
    }
}

fn keys_table(lua: &Lua, names: &FieldNames, keys: Vec<StoreKey>) -> mlua::Result<Table> {
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

/// `(token, expires)` pairs of a map whose values are expiry numbers or records.
fn expiries(map: &Table) -> mlua::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for pair in map.pairs::<Value, Value>() {
        let (key, value) = pair?;
        let Value::String(token) = key else { continue };
        let expires = match &value {
            Value::Table(record) => seconds(&record.raw_get("expires")?),
            other => seconds(other),
        };
        if let (Ok(token), Some(expires)) = (token.to_str(), expires) {
            out.push((token.to_owned(), expires));
        }
    }
    Ok(out)
}

fn token_list(lua: &Lua, tokens: Vec<&str>) -> mlua::Result<Table> {
    lua.create_sequence_from(tokens)
}

/// The validated invite as a Lua table. Strings the record (or the caller) already holds are
/// passed back as those Lua values, not made again.
fn validated_table(
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

/// Reads a field of a validated invite: directly from the table `get` returned, or through its
/// metatable when a consumer handed in something else (a proxy).
fn invite_field<V: mlua::FromLua>(table: &Table, direct: bool, key: &LuaString) -> mlua::Result<V> {
    if direct { table.raw_get(key) } else { table.get(key) }
}

fn validated_from_table(names: &FieldNames, table: &Table) -> mlua::Result<ValidatedInvite> {
    let direct = !matches!(table.raw_get::<Value>(&names.token)?, Value::Nil);
    let kind: String = invite_field(table, direct, &names.kind)?;
    let kind = InviteType::parse(&kind).ok_or_else(|| mlua::Error::runtime("not a validated invite"))?;
    Ok(ValidatedInvite {
        token: invite_field(table, direct, &names.token)?,
        kind,
        username: invite_field(table, direct, &names.username)?,
        inviter: invite_field(table, direct, &names.inviter)?,
        jid: invite_field(table, direct, &names.jid)?,
        uri: invite_field(table, direct, &names.uri)?,
        expires: invite_field(table, direct, &names.expires)?,
        created_at: invite_field(table, direct, &names.created_at)?,
        reusable: invite_field::<Option<bool>>(table, direct, &names.reusable)?.unwrap_or(false),
        host_level: invite_field::<Option<bool>>(table, direct, &names.allow_registration)?.unwrap_or(false),
    })
}

impl UserData for Invites {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // create(type, username?, allow_registration, ttl, reusable?, now)
        //   -> record, stored_at_host_level, contact_owner | nil, err
        methods.add_method(
            "create",
            |lua, this, (kind, username, allow_registration, ttl, reusable, now): (String, Value, bool, u64, Option<bool>, i64)| {
                let kind = InviteType::parse(&kind).ok_or_else(|| mlua::Error::runtime(format!("unknown invite type '{kind}'")))?;
                let username = opt_string(username)?;
                let request = InviteRequest { kind, host: &this.host, username: username.as_deref(), allow_registration, ttl, reusable };
                let token = random_token()?;
                let record = match this.tracer.traced(|| invite::create(&request, token, now))? {
                    Ok(record) => record,
                    Err(e) => return failure(lua, e.code()),
                };
                let names = &this.names;
                let table = lua.create_table_from([
                    (&names.kind, Either::Left(record.kind.as_str())),
                    (&names.jid, Either::Left(record.jid.as_str())),
                    (&names.token, Either::Left(record.token.as_str())),
                    (&names.allow_registration, Either::Right(Value::Boolean(record.allow_registration))),
                    (&names.uri, Either::Left(record.uri.as_str())),
                    (&names.created_at, Either::Right(Value::Integer(record.created_at))),
                    (&names.expires, Either::Right(Value::Integer(record.expires))),
                    (&names.reusable, Either::Right(record.reusable.map_or(Value::Nil, Value::Boolean))),
                ])?;
                let owner = record.contact_owner().map(str::to_owned);
                Ok(MultiValue::from_iter([Value::Table(table), Value::Boolean(record.stored_at_host_level()), owner.into_lua_value(lua)?]))
            },
        );

        // validate(token, record?, username?, user_expiry?, now) -> validated invite | nil, err
        methods.add_method(
            "validate",
            |lua, this, (token_value, record, username, user_expiry, now): (Value, Value, Value, Value, i64)| {
                let token = match &token_value {
                    Value::Nil | Value::Boolean(false) => None,
                    Value::String(s) => match s.to_str() {
                        Ok(s) => Some(s.to_owned()),
                        Err(_) => return failure(lua, Error::TokenInvalid.code()),
                    },
                    _ => return failure(lua, Error::TokenInvalid.code()),
                };
                let username_value = username;
                let username = opt_string(username_value.clone())?;
                let names = &this.names;
                let mut fields = None;
                let outcome = this.tracer.traced(|| {
                    let read = RecordFields::read(names, &record).and_then(|read| {
                        let stored = read.as_ref().map(|fields| fields.stored(names)).transpose()?;
                        fields = read;
                        Ok(stored)
                    });
                    let stored =
                        read.inspect_err(|e| tracing::warn!("ignoring invite {:?}: {e}", token.as_deref().map(token::redact)))?;
                    let redemption = match username.as_deref() {
                        None => Redemption::Account,
                        Some(username) => Redemption::Contact { username, user_expiry: seconds(&user_expiry) },
                    };
                    invite::validate(token.as_deref(), &this.host, stored.as_ref(), redemption, now)
                })?;
                match outcome {
                    Ok(invite) => {
                        let table = validated_table(lua, names, invite, &token_value, &username_value, fields.as_ref())?;
                        Ok(MultiValue::from_iter([Value::Table(table)]))
                    }
                    Err(Error::MalformedRecord(_)) => failure(lua, Error::TokenInvalid.code()),
                    Err(e) => failure(lua, e.code()),
                }
            },
        );

        // use_plan(validated) -> { {user=?, token=}, ... }
        methods.add_method("use_plan", |lua, this, validated: Table| {
            keys_table(lua, &this.names, invite::use_plan(&validated_from_table(&this.names, &validated)?))
        });

        // revoke_plan(token, record?) -> { {user=?, token=}, ... }
        methods.add_method("revoke_plan", |lua, this, (token, record): (String, Value)| {
            let stored = this.tracer.traced(|| stored_record(&this.names, &record).ok().flatten())?;
            keys_table(lua, &this.names, invite::revoke_plan(&token, stored.as_ref()))
        });

        // purge_plan(map, now) -> { token, ... }
        methods.add_method("purge_plan", |lua, this, (map, now): (Table, i64)| {
            let entries = expiries(&map)?;
            let tokens = this.tracer.traced(|| invite::purge_plan(entries.iter().map(|(t, e)| (t.as_str(), *e)), now))?;
            token_list(lua, tokens)
        });

        // pending(host_map, now) -> { token, ... } soonest expiry first
        methods.add_method("pending", |lua, _, (map, now): (Table, i64)| {
            let entries = expiries(&map)?;
            token_list(lua, invite::pending(entries.iter().map(|(t, e)| (t.as_str(), *e)), now))
        });

        // deleted_user_plan(host_map, username) -> { token, ... }
        methods.add_method("deleted_user_plan", |lua, _, (map, username): (Table, String)| {
            let mut entries = Vec::new();
            for pair in map.pairs::<Value, Value>() {
                let (Value::String(token), Value::Table(record)) = pair? else { continue };
                if let (Ok(token), Ok(Some(jid))) = (token.to_str(), record.raw_get::<Option<String>>("jid")) {
                    entries.push((token.to_owned(), jid));
                }
            }
            token_list(lua, invite::deleted_user_plan(entries.iter().map(|(t, j)| (t.as_str(), j.as_str())), &username))
        });

        // reservations_load(host_map, now): rebuilds the index of reserved usernames
        methods.add_method("reservations_load", |_, this, (map, now): (Table, i64)| {
            let entries = reservation_entries(&this.names, &map);
            this.reservations_mut()?.load(entries, now);
            Ok(())
        });

        // reservation_add(token, record, now): a host-level record this process just stored
        methods.add_method("reservation_add", |_, this, (token, record, now): (String, Value, i64)| {
            let mut reservations = this.reservations_mut()?;
            // Until the index is loaded, the load will find the record: nothing to read now.
            if reservations.is_loaded()
                && let Some(entry) = reservation_entry(&this.names, token, &record)
            {
                reservations.add(&entry, now);
            }
            Ok(())
        });

        // removed(token, now): a host-level record this process just removed
        methods.add_method("removed", |_, this, (token, now): (String, i64)| {
            this.reservations_mut()?.remove(&token);
            this.removals.try_borrow_mut().map_err(|_| mlua::Error::runtime("removal memory busy"))?.note(&token, now);
            Ok(())
        });

        // still_stored(token, validated_at) -> true | false | nil (unknown: read storage)
        methods.add_method("still_stored", |_, this, (token, validated_at): (String, i64)| {
            let removals = this.removals.try_borrow().map_err(|_| mlua::Error::runtime("removal memory busy"))?;
            Ok(removals.still_stored(&token, validated_at))
        });

        // reserved_by(username, now, read_record, read_map) -> token | nil | nil, code
        // read_record(token) and read_map() return the stored value, or nil and a code when
        // storage failed; read_map is called once, to load the index.
        methods.add_method(
            "reserved_by",
            |lua, this, (username, now, read_record, read_map): (String, i64, Function, Function)| {
                if !this.reservations_mut()?.is_loaded() {
                    let (map, code): (Value, Value) = read_map.call(())?;
                    let Value::Table(map) = map else { return storage_failure(lua, code) };
                    let entries = reservation_entries(&this.names, &map);
                    this.reservations_mut()?.load(entries, now);
                }
                let mut reservations = this.reservations_mut()?;
                let found = this.tracer.traced(|| {
                    reservations.reserved_by(&username, now, |token| match read_record.call::<(Value, Value)>(token) {
                        Ok((record @ Value::Table(_), _)) => Ok(reservation_entry(&this.names, token.to_owned(), &record)),
                        Ok((_, Value::Nil)) => Ok(None),
                        Ok((_, code)) => Err(Ok(code)),
                        Err(e) => Err(Err(e)),
                    })
                })?;
                match found {
                    Ok(token) => Ok(MultiValue::from_iter([token.into_lua_value(lua)?])),
                    Err(Ok(code)) => storage_failure(lua, code),
                    Err(Err(e)) => Err(e),
                }
            },
        );
    }
}

trait IntoLuaValue {
    fn into_lua_value(self, lua: &Lua) -> mlua::Result<Value>;
}

impl IntoLuaValue for Option<String> {
    fn into_lua_value(self, lua: &Lua) -> mlua::Result<Value> {
        self.map_or(Ok(Value::Nil), |s| lua.create_string(s).map(Value::String))
    }
}

impl Invites {
    /// The reservation index, for one call. Lua callbacks run inside `reserved_by`, so a
    /// re-entrant call is refused with an error rather than a panic.
    fn reservations_mut(&self) -> mlua::Result<std::cell::RefMut<'_, Reservations>> {
        self.reservations.try_borrow_mut().map_err(|_| mlua::Error::runtime("reservation index busy"))
    }
}

/// `nil, code` for a storage read that failed with `code` (a generic code when it gave none).
fn storage_failure(lua: &Lua, code: Value) -> mlua::Result<MultiValue> {
    match code {
        Value::String(code) => Ok(MultiValue::from_iter([Value::Nil, Value::String(code)])),
        _ => failure(lua, "internal-server-error"),
    }
}

/// A stored host-level record as far as reservations care; `None` when it is not a record.
fn reservation_entry(names: &FieldNames, token: String, record: &Value) -> Option<ReservationEntry> {
    let fields = RecordFields::read(names, record).ok()??;
    let stored = fields.stored(names).ok()?;
    let reset = match &fields.additional_data {
        Value::Table(data) => truthy(&data.raw_get(&names.allow_reset).unwrap_or(Value::Nil)),
        _ => false,
    };
    Some(ReservationEntry { token, kind: stored.kind, jid: stored.jid, expires: stored.expires, reset })
}

/// The reservation entries of a whole host-level map.
fn reservation_entries(names: &FieldNames, map: &Table) -> Vec<ReservationEntry> {
    map.pairs::<Value, Value>()
        .flatten()
        .filter_map(|(token, record)| match token {
            Value::String(token) => reservation_entry(names, token.to_str().ok()?.to_owned(), &record),
            _ => None,
        })
        .collect()
}

/// `core.new(host, log, now)`
fn new_invites(lua: &Lua, (host, log, now): (String, Function, i64)) -> mlua::Result<Invites> {
    Ok(Invites {
        host,
        tracer: Tracer::new(log),
        names: FieldNames::new(lua)?,
        reservations: RefCell::default(),
        removals: RefCell::new(Removals::new(now)),
    })
}

fn check_token(lua: &Lua, token: Value) -> mlua::Result<MultiValue> {
    match token {
        Value::Nil => failure(lua, Error::NoToken.code()),
        Value::String(s) if s.to_str().is_ok_and(|s| token::check_token(&s).is_ok()) => {
            Ok(MultiValue::from_iter([Value::Boolean(true)]))
        }
        _ => failure(lua, Error::TokenInvalid.code()),
    }
}

/// `core.redact(token)`: what a log line may show of a token (a short prefix); any other value
/// is shown as its type.
fn redact(_lua: &Lua, value: Value) -> mlua::Result<String> {
    Ok(match &value {
        Value::String(s) => token::redact(&s.to_string_lossy()),
        other => format!("<{}>", other.type_name()),
    })
}

fn parse_period(lua: &Lua, value: Value) -> mlua::Result<MultiValue> {
    let parsed = match &value {
        Value::Integer(n) => period::period_from_number(*n as f64),
        Value::Number(n) => period::period_from_number(*n),
        Value::String(s) => period::parse_period(&s.to_str()?),
        other => Err(Error::InvalidPeriod(other.type_name().to_owned())),
    };
    match parsed {
        Ok(seconds) => Ok(MultiValue::from_iter([Value::Integer(i64::try_from(seconds).unwrap_or(i64::MAX))])),
        Err(e) => failure(lua, &e.to_string()),
    }
}

/// A period option as Prosody 13's `get_option_period` reads it: seconds and, when Prosody would
/// log it as ambiguous, `true`; or `nil, reason`.
fn option_period(lua: &Lua, value: Value) -> mlua::Result<MultiValue> {
    let parsed = match &value {
        Value::Boolean(false) => Ok(period::OptionPeriod { seconds: period::NEVER, ambiguous: false }),
        // Prosody 13 treats a negative period as "never".
        Value::Integer(n) if *n < 0 => Ok(period::OptionPeriod { seconds: period::NEVER, ambiguous: false }),
        Value::Number(n) if *n < 0.0 => Ok(period::OptionPeriod { seconds: period::NEVER, ambiguous: false }),
        Value::Integer(n) => {
            period::period_from_number(*n as f64).map(|seconds| period::OptionPeriod { seconds, ambiguous: false })
        }
        Value::Number(n) => period::period_from_number(*n).map(|seconds| period::OptionPeriod { seconds, ambiguous: false }),
        Value::String(s) => period::option_period(&s.to_str()?),
        other => Err(Error::InvalidPeriod(other.type_name().to_owned())),
    };
    match parsed {
        Ok(period) => Ok(MultiValue::from_iter([
            Value::Integer(i64::try_from(period.seconds).unwrap_or(i64::MAX)),
            Value::Boolean(period.ambiguous),
        ])),
        Err(e) => failure(lua, &e.to_string()),
    }
}

/// lifecycle(facts, now, retention) -> { state, uses_left? (nil: unlimited), purge_audit }
/// facts = { stored, expires, uses, max_uses?, reusable, revoked_at?, last_use? }
fn lifecycle_of(lua: &Lua, (facts, now, retention): (Table, i64, i64)) -> mlua::Result<Table> {
    let seconds = |key: &str| -> mlua::Result<Option<i64>> { Ok(seconds(&facts.raw_get::<Value>(key)?)) };
    let limit = use_limit(&facts)?;
    let uses = match facts.raw_get::<Value>("uses")? {
        Value::Integer(n) => u32::try_from(n).unwrap_or(u32::MAX),
        _ => 0,
    };
    let known = lifecycle::Facts {
        stored: bool_field(&facts, "stored"),
        expires: seconds("expires")?.unwrap_or(0),
        uses,
        max_uses: limit.map(|(max_uses, _)| max_uses),
        reusable: bool_field(&facts, "reusable"),
        revoked_at: seconds("revoked_at")?,
    };
    let ended = lifecycle::ended_at(&known, seconds("last_use")?, now);
    let table = lua.create_table()?;
    table.set("state", lifecycle::state(&known, now).as_str())?;
    table.set("uses_left", lifecycle::uses_left(known.max_uses, known.reusable, uses))?;
    table.set("purge_audit", lifecycle::audit_expired(ended, u64::try_from(retention).unwrap_or(0), now))?;
    Ok(table)
}

/// quota_check(created_at_list, pending, quota? = { count, period, period_text }, max_pending?, now)
///   -> true | nil, message
fn quota_check(
    lua: &Lua,
    (created, pending, quota, max_pending, now): (Table, u32, Option<Table>, Option<u32>, i64),
) -> mlua::Result<MultiValue> {
    let created: Vec<i64> = created.sequence_values::<i64>().collect::<mlua::Result<_>>()?;
    let quota = match quota {
        Some(quota) => Some(lifecycle::Quota {
            count: quota.raw_get("count")?,
            period: quota.raw_get("period")?,
            period_text: str_field(&quota, "period_text").unwrap_or_default(),
        }),
        None => None,
    };
    match lifecycle::quota_check(&created, pending, quota.as_ref(), max_pending, now) {
        Ok(()) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
        Err(refusal) => failure(lua, refusal.message()),
    }
}

/// The admin shell's verbs in the shape of Prosody 13's `shell-command` items (without handlers).
fn shell_commands(lua: &Lua) -> mlua::Result<Table> {
    let commands = lua.create_table()?;
    for command in cli::SHELL_COMMANDS {
        let args = lua.create_table()?;
        for name in command.args {
            args.push(lua.create_table_from([("name", *name), ("type", "string")])?)?;
        }
        let set = |names: &[&str]| lua.create_table_from(names.iter().map(|&name| (name, true)));
        // Verbs without flags have none, so 13's help lists no empty "Flags:".
        let flags = if command.value_flags.is_empty() && command.array_flags.is_empty() && command.switches.is_empty() {
            None
        } else {
            let flags = lua.create_table()?;
            flags.set("value_params", set(command.value_flags)?)?;
            flags.set("array_params", set(command.array_flags)?)?;
            flags.set("kv_params", set(command.switches)?)?;
            Some(flags)
        };
        let item = lua.create_table()?;
        item.set("section", "invite")?;
        item.set("section_desc", cli::SHELL_SECTION_DESC)?;
        item.set("name", command.name)?;
        item.set("desc", command.desc)?;
        item.set("args", args)?;
        item.set("host_selector", command.args.first().copied())?;
        item.set("flags", flags)?;
        commands.push(item)?;
    }
    Ok(commands)
}

/// Prosody 0.12's shell form of a verb's words: the fixed arguments as a list and the flags as a
/// table shaped like Prosody 13's parsed flags; or `nil, reason`.
fn parse_shell_args(lua: &Lua, (name, words): (String, Table)) -> mlua::Result<MultiValue> {
    let Some(command) = cli::SHELL_COMMANDS.iter().find(|command| command.name == name) else {
        return failure(lua, &format!("no such command: {name}"));
    };
    let words: Vec<String> = words.sequence_values::<String>().collect::<mlua::Result<_>>()?;
    let parsed = match cli::parse_shell_args(command, &words) {
        Ok(parsed) => parsed,
        Err(e) => return failure(lua, &e.to_string()),
    };
    let flags = lua.create_table()?;
    for (name, value) in parsed.flags {
        match value {
            cli::FlagValue::Text(text) => flags.set(name, text)?,
            cli::FlagValue::List(list) => flags.set(name, lua.create_sequence_from(list)?)?,
            cli::FlagValue::Switch(on) => flags.set(name, on)?,
        }
    }
    Ok(MultiValue::from_iter([Value::Table(lua.create_sequence_from(parsed.args)?), Value::Table(flags)]))
}

fn parse_flag(lua: &Lua, value: Value) -> mlua::Result<MultiValue> {
    let flag = match &value {
        Value::Nil => Some(false),
        Value::Boolean(b) => Some(*b),
        Value::String(s) => s.to_str().ok().and_then(|s| cli::parse_flag(&s)),
        _ => None,
    };
    match flag {
        Some(flag) => Ok(MultiValue::from_iter([Value::Boolean(flag)])),
        None => failure(lua, "expected true or false"),
    }
}

fn parse_generate(lua: &Lua, args: Table) -> mlua::Result<MultiValue> {
    let args: Vec<String> = args.sequence_values::<String>().collect::<mlua::Result<_>>()?;
    let command = match cli::parse_generate(&args) {
        Ok(command) => command,
        Err(e) => return failure(lua, &e.to_string()),
    };
    let table = lua.create_table()?;
    match command {
        GenerateCommand::Help => table.set("help", true)?,
        GenerateCommand::Generate(request) => {
            table.set("host", request.host)?;
            table.set("expires_after", request.expires_after)?;
            match request.mode {
                GenerateMode::Account { roles, groups, uses, rooms } => {
                    table.set("roles", lua.create_sequence_from(roles)?)?;
                    table.set("groups", lua.create_sequence_from(groups)?)?;
                    table.set("uses", uses)?;
                    table.set("rooms", lua.create_sequence_from(rooms)?)?;
                }
                GenerateMode::Reset { username } => table.set("reset", username)?,
            }
        }
    }
    Ok(MultiValue::from_iter([Value::Table(table)]))
}

fn parse_uri(lua: &Lua, text: String) -> mlua::Result<MultiValue> {
    let parsed = match uri::parse(&text) {
        Ok(parsed) => parsed,
        Err(e) => return failure(lua, &e.to_string()),
    };
    let table = lua.create_table()?;
    table.set("jid", parsed.jid)?;
    table.set("action", parsed.action)?;
    let params = lua.create_table()?;
    for (key, value) in parsed.params {
        params.set(key, value)?;
    }
    table.set("params", params)?;
    Ok(MultiValue::from_iter([Value::Table(table)]))
}

fn parse_datetime(lua: &Lua, text: String) -> mlua::Result<MultiValue> {
    match datetime::parse_datetime(&text) {
        Ok(seconds) => Ok(MultiValue::from_iter([Value::Integer(seconds)])),
        Err(e) => failure(lua, &e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// mod_invites_register: per-host registration state (pre-auth throttle, single-use claims) and
// the XEP-0379 / XEP-0445 rules of `crate::register`.

use crate::register::{
    self as reg, Claims, Exemptions, PreauthGate, PreauthStep, PresentedInvite, Registering, Reservation, RoleEntry, Settlement,
    StanzaError, ThrottleConfig,
};

/// Per-host state of mod_invites_register; the shim owns it (never process-global).
struct Registration {
    tracer: Tracer,
    gate: PreauthGate,
    claims: Claims,
}

/// `max_uses` and `uses` of a table: the use limit and the uses recorded so far, or `None` when
/// `max_uses` is not a positive integer (such an invite is not limited).
fn use_limit(table: &Table) -> mlua::Result<Option<(u32, u32)>> {
    let count = |key: &str| -> mlua::Result<Option<u32>> {
        Ok(match table.raw_get::<Value>(key)? {
            Value::Integer(n) => u32::try_from(n).ok(),
            Value::Number(n) if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) => Some(n as u32),
            _ => None,
        })
    };
    let Some(max_uses) = count("max_uses")?.filter(|&n| n >= 1) else {
        return Ok(None);
    };
    Ok(Some((max_uses, count("uses")?.unwrap_or(0))))
}

/// A string field of a table, or `None` for anything else (stored data may be junk).
fn str_field(table: &Table, key: &str) -> Option<String> {
    match table.raw_get::<Value>(key) {
        Ok(Value::String(s)) => s.to_str().ok().map(|s| s.to_owned()),
        _ => None,
    }
}

fn bool_field(table: &Table, key: &str) -> bool {
    matches!(table.raw_get::<Value>(key), Ok(Value::Boolean(true)))
}

fn error_table(lua: &Lua, error: StanzaError, reason: &str) -> mlua::Result<Table> {
    let table = lua.create_table_with_capacity(0, 4)?;
    table.set("type", error.kind)?;
    table.set("condition", error.condition)?;
    table.set("text", error.text)?;
    table.set("reason", reason)?;
    Ok(table)
}

/// `additional_data.roles` as a map (`{role = true}`) or an array (`{"role"}`), array part first
/// and in order.
fn role_entries(value: &Value) -> Vec<RoleEntry> {
    let Value::Table(roles) = value else { return Vec::new() };
    let mut entries: Vec<RoleEntry> =
        roles.sequence_values::<Value>().flatten().filter_map(|v| opt_plain_string(&v)).map(RoleEntry::Listed).collect();
    for (key, value) in roles.pairs::<Value, Value>().flatten() {
        if let Value::String(name) = key {
            if let Ok(name) = name.to_str() {
                entries.push(RoleEntry::Keyed(name.to_owned(), !matches!(value, Value::Nil | Value::Boolean(false))));
            }
        }
    }
    entries
}

impl UserData for Registration {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // preauth(ip?, iq_type, token?, now) -> true | false, error
        // Records the failure when the request counts as one.
        methods.add_method_mut("preauth", |lua, this, (ip, iq_type, token, now): (Value, Value, Value, i64)| {
            let ip = opt_plain_string(&ip);
            let iq_type = opt_plain_string(&iq_type).unwrap_or_default();
            let token = match &token {
                Value::Nil => None,
                // Anything but a proper string is as good as junk.
                Value::String(s) => Some(s.to_str().map(|s| s.to_owned()).unwrap_or_else(|_| "\u{0}".to_owned())),
                _ => Some("\u{0}".to_owned()),
            };
            let step = this.gate.check(ip.as_deref(), &iq_type, token.as_deref(), now);
            match step {
                PreauthStep::Lookup => Ok(MultiValue::from_iter([Value::Boolean(true)])),
                PreauthStep::Refuse { error, reason, counts } => {
                    let gate = &mut this.gate;
                    let throttled_now = counts && this.tracer.traced(|| gate.record_failure(ip.as_deref(), now))?;
                    let table = error_table(lua, error, reason)?;
                    table.set("throttled_now", throttled_now)?;
                    Ok(MultiValue::from_iter([Value::Boolean(false), Value::Table(table)]))
                }
            }
        });

        // preauth_failed(ip?, code, now) -> error   (the token lookup failed with `code`)
        methods.add_method_mut("preauth_failed", |lua, this, (ip, code, now): (Value, Value, i64)| {
            let ip = opt_plain_string(&ip);
            let code = opt_plain_string(&code).unwrap_or_default();
            let (error, counts) = PreauthGate::lookup_failed(&code);
            let gate = &mut this.gate;
            let throttled_now = counts && this.tracer.traced(|| gate.record_failure(ip.as_deref(), now))?;
            let table = error_table(lua, error, if counts { "unknown, used or expired token" } else { "lookup failed" })?;
            table.set("throttled_now", throttled_now)?;
            Ok(table)
        });

        // registering(request, holder, now) -> true, allow_reset? | false, error
        // request = { invite_only, username, account_exists, reserved_by? (token, or false when the
        //   lookup failed), invite? = { token, type, jid?, username?, allow_reset?, reusable,
        //   still_stored, storage_failed, max_uses?, uses? } }
        methods.add_method_mut("registering", |lua, this, (request, holder, now): (Table, u64, i64)| {
            let username = str_field(&request, "username").unwrap_or_default();
            // None: the lookup failed.
            let reserved_by = match request.raw_get::<Value>("reserved_by")? {
                Value::Boolean(false) => None,
                other => Some(opt_plain_string(&other)),
            };
            let invite = match request.raw_get::<Value>("invite")? {
                Value::Table(invite) => Some((
                    str_field(&invite, "token").unwrap_or_default(),
                    str_field(&invite, "type").as_deref().and_then(InviteType::parse).unwrap_or(InviteType::Register),
                    str_field(&invite, "jid"),
                    str_field(&invite, "username"),
                    str_field(&invite, "allow_reset"),
                    bool_field(&invite, "reusable"),
                    bool_field(&invite, "still_stored"),
                    bool_field(&invite, "storage_failed"),
                    use_limit(&invite)?,
                )),
                _ => None,
            };
            let facts = Registering {
                invite_only: bool_field(&request, "invite_only"),
                username: &username,
                account_exists: bool_field(&request, "account_exists"),
                invite: invite.as_ref().map(
                    |(token, kind, jid, name, allow_reset, reusable, still_stored, storage_failed, limit)| PresentedInvite {
                        token,
                        kind: *kind,
                        jid: jid.as_deref(),
                        username: name.as_deref(),
                        allow_reset: allow_reset.as_deref(),
                        reusable: *reusable,
                        limit: *limit,
                        still_stored: *still_stored,
                        storage_failed: *storage_failed,
                    },
                ),
                reservation: match &reserved_by {
                    None => Reservation::Unknown,
                    Some(None) => Reservation::Free,
                    Some(Some(token)) => Reservation::By(token),
                },
            };
            let claims = &mut this.claims;
            let outcome = this.tracer.traced(|| -> Result<reg::Allowed, reg::Refusal> {
                let allowed = reg::decide_registration(&facts)?;
                if let Some(claim) = &allowed.claim {
                    claims.claim(claim, holder, now)?;
                }
                Ok(allowed)
            })?;
            match outcome {
                Ok(allowed) => {
                    let reset = allowed.allow_reset.into_lua_value(lua)?;
                    Ok(MultiValue::from_iter([Value::Boolean(true), reset]))
                }
                Err(refusal) => {
                    let table = error_table(lua, refusal.error(), refusal.reason())?;
                    Ok(MultiValue::from_iter([Value::Boolean(false), Value::Table(table)]))
                }
            }
        });

        // registered(token, holder?, facts) -> plan | nil
        // facts = { username, inviter?, inviter_exists, still_stored, roles?, max_uses?, uses? }
        // plan = { consume = true, befriend = inviter?, roles = { role = true }? }
        methods.add_method_mut("registered", |lua, this, (token, holder, facts): (String, Option<u64>, Table)| {
            let settlement = this.claims.settle(&token, holder);
            let username = str_field(&facts, "username").unwrap_or_default();
            let inviter = str_field(&facts, "inviter");
            let roles = reg::role_names(role_entries(&facts.raw_get::<Value>("roles")?));
            let plan = reg::welcome(
                settlement,
                &username,
                inviter.as_deref(),
                bool_field(&facts, "inviter_exists"),
                bool_field(&facts, "still_stored"),
                use_limit(&facts)?,
                roles,
            );
            let Some(plan) = plan else {
                let why = match settlement {
                    Settlement::HeldByOther => "claimed by another registration",
                    _ => "no longer stored",
                };
                return Ok(MultiValue::from_iter([Value::Nil, Value::String(lua.create_string(why)?)]));
            };
            let table = lua.create_table_with_capacity(0, 3)?;
            table.set("consume", plan.consume)?;
            table.set("befriend", plan.befriend)?;
            if !plan.roles.is_empty() {
                // The 0.12 `roles` store wants a map; Prosody 13 wants the primary role first.
                let roles = lua.create_table_with_capacity(0, plan.roles.len())?;
                for role in &plan.roles {
                    roles.set(role.as_str(), true)?;
                }
                table.set("roles", roles)?;
                table.set("role_list", lua.create_sequence_from(plan.roles)?)?;
            }
            Ok(MultiValue::from_iter([Value::Table(table)]))
        });

        // consumed(token, ok, now): the consume of a registration's invite succeeded (the claim is
        // dropped) or failed (the claim stays, spent, until a retry succeeds).
        methods.add_method_mut("consumed", |_, this, (token, ok, now): (String, bool, i64)| {
            this.claims.consumed(&token, ok, now);
            Ok(())
        });

        // unsettled() -> { token, ... } whose consume failed and is owed
        methods.add_method("unsettled", |lua, this, ()| lua.create_sequence_from(this.claims.unsettled()));

        // release(holder) -> number of claims released
        methods.add_method_mut("release", |_, this, holder: u64| Ok(this.claims.release(holder)));

        // tidy(now): forget stale throttle entries and lapsed claims.
        methods.add_method_mut("tidy", |_, this, now: i64| {
            this.gate.forget_stale(now);
            this.claims.expire(now);
            Ok(())
        });
    }
}

fn opt_plain_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => s.to_str().ok().map(|s| s.to_owned()),
        _ => None,
    }
}

/// `core.new_registration(host, log, options?)`; options: `max_failures`, `failure_window`,
/// `exempt` (list of addresses or CIDR networks), `ipv6_prefix`.
/// `host` mirrors `core.new`; the rules need no host name.
fn new_registration(_lua: &Lua, (_host, log, options): (String, Function, Option<Table>)) -> mlua::Result<Registration> {
    let tracer = Tracer::new(log);
    let mut config = ThrottleConfig::default();
    if let Some(options) = options {
        if let Some(max) = seconds(&options.raw_get("max_failures")?) {
            config.max_failures = u32::try_from(max.max(0)).unwrap_or(u32::MAX);
        }
        if let Some(window) = seconds(&options.raw_get("failure_window")?) {
            config.window = window.max(0);
        }
        if let Some(prefix) = seconds(&options.raw_get("ipv6_prefix")?) {
            config.ipv6_prefix = u8::try_from(prefix.clamp(0, 128)).unwrap_or(128);
        }
        if let Value::Table(list) = options.raw_get::<Value>("exempt")? {
            let entries: Vec<String> = list.sequence_values::<Value>().flatten().filter_map(|v| opt_plain_string(&v)).collect();
            let (exempt, bad) = Exemptions::parse(entries.iter().map(String::as_str));
            for entry in bad {
                tracer.log.call::<()>(("warn", format!("ignoring invalid address in the throttle exemptions: {entry}")))?;
            }
            config.exempt = exempt;
        }
    }
    Ok(Registration { tracer, gate: PreauthGate::new(config), claims: Claims::new() })
}

fn contact_token(
    _lua: &Lua,
    (presence_type, token, from_bare, to_bare): (Value, Value, String, String),
) -> mlua::Result<Option<String>> {
    let presence_type = opt_plain_string(&presence_type);
    let token = opt_plain_string(&token);
    Ok(reg::contact_token(presence_type.as_deref(), token.as_deref(), &from_bare, &to_bare).map(str::to_owned))
}

// ---------------------------------------------------------------------------------------------
// mod_invites_adhoc: the XEP-0401 command rules of `crate::adhoc`, as `core.adhoc.*`.

use crate::adhoc::{self, AccountPlan, Authority, NameFacts, Requester};

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

/// Lua truthiness: `usermanager.is_admin` answers with whatever the roles table holds.
fn truthy(value: &Value) -> bool {
    !matches!(value, Value::Nil | Value::Boolean(false))
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
struct AdhocPolicy(adhoc::Policy);

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

        // contact_invite(requester, registration_possible) -> allow_registration | nil, code
        methods.add_method("contact_invite", |lua, this, (requester, possible): (Table, bool)| {
            match this.0.contact_invite(&requester_from(&requester)?, possible) {
                Ok(allow) => Ok(MultiValue::from_iter([Value::Boolean(allow)])),
                Err(e) => failure(lua, e.code()),
            }
        });
    }
}

/// `core.adhoc.policy(options)`; options carry the stock option names, role lists as arrays.
fn new_adhoc_policy(_lua: &Lua, options: Table) -> mlua::Result<AdhocPolicy> {
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

/// `core.adhoc.requested_username(raw, prepped)` -> name | false (blank: any name) | nil, code
fn adhoc_requested_username(lua: &Lua, (raw, prepped): (Value, Value)) -> mlua::Result<MultiValue> {
    let raw = opt_plain_string(&raw);
    let prepped = opt_plain_string(&prepped);
    match adhoc::requested_username(raw.as_deref(), prepped.as_deref()) {
        Ok(Some(name)) => Ok(MultiValue::from_iter([Value::String(lua.create_string(name)?)])),
        Ok(None) => Ok(MultiValue::from_iter([Value::Boolean(false)])),
        Err(e) => failure(lua, e.code()),
    }
}

/// `core.adhoc.account_invite(username|false, { exists, reserved }, roster_subscription, requester_local)`
/// -> { username?, subscribe } | nil, code
fn adhoc_account_invite(lua: &Lua, (username, facts, subscribe, local): (Value, Table, bool, bool)) -> mlua::Result<MultiValue> {
    let username = opt_plain_string(&username);
    let facts = NameFacts { exists: truthy(&facts.raw_get("exists")?), reserved: truthy(&facts.raw_get("reserved")?) };
    match adhoc::account_invite(username.as_deref(), facts, subscribe, local) {
        Ok(AccountPlan { username, subscribe }) => {
            let plan = lua.create_table_with_capacity(0, 2)?;
            plan.set("username", username)?;
            plan.set("subscribe", subscribe)?;
            Ok(MultiValue::from_iter([Value::Table(plan)]))
        }
        Err(e) => failure(lua, e.code()),
    }
}

/// `core.adhoc.reset_account(accountjid, host)` -> username | nil, code, text
fn adhoc_reset_account(lua: &Lua, (jid, host): (Value, String)) -> mlua::Result<MultiValue> {
    let jid = opt_plain_string(&jid);
    match adhoc::reset_account(jid.as_deref(), &host) {
        Ok(username) => Ok(MultiValue::from_iter([Value::String(lua.create_string(username)?)])),
        Err(e) => {
            let text = adhoc::command_error_for(&e, &host).text;
            let mut out = failure(lua, e.code())?;
            out.push_back(Value::String(lua.create_string(text)?));
            Ok(out)
        }
    }
}

/// `core.adhoc.invitation_fields(uri, landing_page?, expires)` -> util.dataforms layout fields
fn adhoc_invitation_fields(lua: &Lua, (uri, landing_page, expires): (String, Value, Value)) -> mlua::Result<Table> {
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

/// `core.adhoc.command_error(code, host, detail?)` -> { type, condition, text, message }
/// (`message` for adhoc libraries older than util.error-style error tables).
fn adhoc_command_error(lua: &Lua, (code, host, detail): (Value, String, Value)) -> mlua::Result<Table> {
    let code = opt_plain_string(&code).unwrap_or_default();
    let detail = opt_plain_string(&detail);
    let error = adhoc::command_error(&code, &host, detail.as_deref());
    let table = lua.create_table_with_capacity(0, 4)?;
    table.set("type", error.kind)?;
    table.set("condition", error.condition)?;
    table.set("text", error.text.as_str())?;
    table.set("message", error.text)?;
    Ok(table)
}

fn adhoc_exports(lua: &Lua) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set("policy", lua.create_function(new_adhoc_policy)?)?;
    table.set("requested_username", lua.create_function(adhoc_requested_username)?)?;
    table.set("account_invite", lua.create_function(adhoc_account_invite)?)?;
    table.set("reset_account", lua.create_function(adhoc_reset_account)?)?;
    table.set("invitation_fields", lua.create_function(adhoc_invitation_fields)?)?;
    table.set("command_error", lua.create_function(adhoc_command_error)?)?;
    table.set("invitation_title", adhoc::INVITATION_TITLE)?;
    Ok(table)
}

/// `nil, code, message, outcome` for a refused room.
fn room_refusal(lua: &Lua, refusal: &RoomRefusal) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        Value::Nil,
        Value::String(lua.create_string(refusal.kind.code())?),
        Value::String(lua.create_string(refusal.to_string())?),
        Value::String(lua.create_string(refusal.redemption_outcome())?),
    ]))
}

/// `core.rooms.normalise(inputs, max)` with inputs `{ { given, prepped?, autojoin? }, ... }`
///   -> `{ { jid, autojoin }, ... }` | nil, code, message
fn rooms_normalise(lua: &Lua, (inputs, max): (Table, Option<usize>)) -> mlua::Result<MultiValue> {
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
        Err(refusal) => room_refusal(lua, &refusal),
    }
}

/// `core.rooms.check(room, facts, requester)`; facts: booleans `muc_service`, `checked`, `exists`,
/// `destroyed`, `persistent`, `members_only`, `allow_member_invites`; requester `{ privileged = true }`
/// or `{ affiliation = "member" | nil }` -> true, "room" | "service" or nil, code, message, outcome
fn rooms_check(lua: &Lua, (room, facts, requester): (String, Table, Table)) -> mlua::Result<MultiValue> {
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
        Err(refusal) => room_refusal(lua, &refusal),
    }
}

fn affiliation_of(value: &Value) -> Option<rooms::Affiliation> {
    opt_plain_string(value).as_deref().and_then(rooms::Affiliation::parse)
}

/// `core.rooms` for mod_invites' room handling.
fn rooms_exports(lua: &Lua) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set("default_max", rooms::DEFAULT_MAX_ROOMS)?;
    table.set("normalise", lua.create_function(rooms_normalise)?)?;
    table.set("check", lua.create_function(rooms_check)?)?;
    // plan(affiliation?) -> "grant" | "keep" | "banned", outcome, welcomes (bookmark and invitation)
    table.set(
        "plan",
        lua.create_function(|_, current: Value| {
            let step = rooms::plan(affiliation_of(&current));
            let name = match step {
                rooms::Step::Grant => "grant",
                rooms::Step::Keep(_) => "keep",
                rooms::Step::Banned => "banned",
            };
            Ok((name, step.outcome(), step.welcomes()))
        })?,
    )?;
    table.set(
        "remove_on_delete",
        lua.create_function(|_, current: Value| Ok(rooms::remove_on_delete(affiliation_of(&current))))?,
    )?;
    // invitation_mode(option?) -> "inviter" | "room" | "none" | nil, message
    table.set(
        "invitation_mode",
        lua.create_function(|lua, value: Value| match rooms::InvitationMode::parse(opt_plain_string(&value).as_deref()) {
            Ok(mode) => Ok(MultiValue::from_iter([Value::String(lua.create_string(match mode {
                rooms::InvitationMode::Inviter => "inviter",
                rooms::InvitationMode::Room => "room",
                rooms::InvitationMode::None => "none",
            })?)])),
            Err(message) => failure(lua, &message),
        })?,
    )?;
    // invitation_sender(mode, inviter?, room) -> jid | nil
    table.set(
        "invitation_sender",
        lua.create_function(|_, (mode, inviter, room): (String, Value, String)| {
            let mode = rooms::InvitationMode::parse(Some(&mode)).unwrap_or_default();
            Ok(rooms::invitation_sender(mode, opt_plain_string(&inviter).as_deref(), &room))
        })?,
    )?;
    // invitation_reason(inviter?, room_name?, room) -> text
    table.set(
        "invitation_reason",
        lua.create_function(|_, (inviter, name, room): (Value, Value, String)| {
            Ok(rooms::invitation_reason(opt_plain_string(&inviter).as_deref(), opt_plain_string(&name).as_deref(), &room))
        })?,
    )?;
    Ok(table)
}

// skip_memory_check: Prosody gives Lua no memory limit, so an allocation fails only when the whole
// process is out of memory. mlua then pushes strings and stores table fields directly instead of
// wrapping each in a protected call, which halves the cost of every call into this library
// (`make bench`, figure 1).
#[mlua::lua_module(skip_memory_check)]
fn invites_core(lua: &Lua) -> mlua::Result<Table> {
    let exports = lua.create_table()?;
    exports.set("version", env!("CARGO_PKG_VERSION"))?;
    exports.set("new", lua.create_function(new_invites)?)?;
    exports.set("check_token", lua.create_function(check_token)?)?;
    exports.set("redact", lua.create_function(redact)?)?;
    exports.set("parse_period", lua.create_function(parse_period)?)?;
    exports.set("option_period", lua.create_function(option_period)?)?;
    exports.set("parse_flag", lua.create_function(parse_flag)?)?;
    exports.set(
        "parse_uses",
        lua.create_function(|lua, text: String| match cli::parse_uses(&text) {
            Ok(n) => Ok(MultiValue::from_iter([Value::Integer(i64::from(n))])),
            Err(e) => failure(lua, &e.to_string()),
        })?,
    )?;
    exports.set("shell_commands", shell_commands(lua)?)?;
    exports.set("lifecycle", lua.create_function(lifecycle_of)?)?;
    exports.set("quota_check", lua.create_function(quota_check)?)?;
    exports.set("parse_shell_args", lua.create_function(parse_shell_args)?)?;
    exports.set("parse_generate", lua.create_function(parse_generate)?)?;
    exports.set("generate_usage", cli::GENERATE_USAGE)?;
    exports.set("datetime", lua.create_function(|_, seconds: i64| Ok(datetime::format_datetime(seconds)))?)?;
    exports.set("parse_datetime", lua.create_function(parse_datetime)?)?;
    exports.set("parse_uri", lua.create_function(parse_uri)?)?;
    exports.set("default_ttl", invite::DEFAULT_TTL)?;
    exports.set("default_reset_ttl", invite::DEFAULT_RESET_TTL)?;
    let namespaces = lua.create_table()?;
    for (name, value) in ns::ALL {
        namespaces.set(*name, *value)?;
    }
    exports.set("ns", namespaces)?;
    // mod_invites_register
    exports.set("new_registration", lua.create_function(new_registration)?)?;
    exports.set(
        "advertise_features",
        lua.create_function(|_, (kind, secure, required): (String, bool, bool)| {
            Ok(reg::advertise_features(&kind, secure, required))
        })?,
    )?;
    exports.set("contact_token", lua.create_function(contact_token)?)?;
    exports.set(
        "subscribe_back",
        lua.create_function(|_, (subscribed, pending): (bool, bool)| Ok(reg::subscribe_back(subscribed, pending)))?,
    )?;
    exports.set(
        "registration_possible",
        lua.create_function(|_, (ours, ibr, web): (bool, bool, bool)| Ok(reg::registration_possible(ours, ibr, web)))?,
    )?;
    // mod_invites_adhoc
    exports.set("adhoc", adhoc_exports(lua)?)?;
    // Group chats carried by invites
    exports.set("rooms", rooms_exports(lua)?)?;
    Ok(exports)
}
