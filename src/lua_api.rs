//! The Lua binding: the only file that knows about mlua.
//!
//! It converts Lua values to core types and back, draws token bytes from the OS random source,
//! maps [`Error`] to Prosody's `nil, "<code>"` convention and forwards the core's `tracing`
//! diagnostics to the logger the shim passes in. Misuse (a wrong argument type) raises a Lua
//! error; expected failures never do.

use std::sync::{Arc, Mutex};

use mlua::{Function, Lua, MultiValue, Table, UserData, UserDataMethods, Value};
use rand::TryRng;
use rand::rngs::SysRng;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::cli::{self, GenerateCommand, GenerateMode};
use crate::invite::{self, InviteRequest, InviteType, Redemption, StoreKey, StoredRecord, ValidatedInvite};
use crate::token::{self, TOKEN_BYTES};
use crate::{Error, datetime, ns, period, uri};

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

/// Per-host state the shim owns: the host name and the module's logger.
struct Invites {
    host: String,
    log: Function,
    dispatch: Dispatch,
    diagnostics: Diagnostics,
}

impl Invites {
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

fn stored_record(value: &Value) -> Result<Option<StoredRecord>, Error> {
    let table = match value {
        Value::Nil => return Ok(None),
        Value::Table(table) => table,
        _ => return Err(Error::MalformedRecord("record")),
    };
    let text = |key: &'static str| -> Result<Option<String>, Error> {
        match table.raw_get::<Value>(key) {
            Ok(Value::Nil) => Ok(None),
            Ok(Value::String(s)) => s.to_str().map(|s| Some(s.to_owned())).map_err(|_| Error::MalformedRecord(key)),
            _ => Err(Error::MalformedRecord(key)),
        }
    };
    let kind = text("type")?.as_deref().and_then(InviteType::parse).ok_or(Error::MalformedRecord("type"))?;
    let jid = text("jid")?.ok_or(Error::MalformedRecord("jid"))?;
    let expires = seconds(&table.raw_get("expires").unwrap_or(Value::Nil)).ok_or(Error::MalformedRecord("expires"))?;
    let created_at = seconds(&table.raw_get("created_at").unwrap_or(Value::Nil));
    let reusable = matches!(table.raw_get("reusable"), Ok(Value::Boolean(true)));
    Ok(Some(StoredRecord { kind, jid, expires, created_at, uri: text("uri")?, reusable }))
}

fn opt_string(value: Value) -> mlua::Result<Option<String>> {
    match value {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_str()?.to_owned())),
        other => Err(mlua::Error::runtime(format!("expected a string, got {}", other.type_name()))),
    }
}

fn keys_table(lua: &Lua, keys: Vec<StoreKey>) -> mlua::Result<Table> {
    let list = lua.create_table_with_capacity(keys.len(), 0)?;
    for key in keys {
        let entry = lua.create_table_with_capacity(0, 2)?;
        entry.set("user", key.user)?;
        entry.set("token", key.token)?;
        list.push(entry)?;
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

fn validated_table(lua: &Lua, invite: ValidatedInvite, record: &Value) -> mlua::Result<Table> {
    let table = lua.create_table_with_capacity(0, 13)?;
    table.set("token", invite.token)?;
    table.set("type", invite.kind.as_str())?;
    table.set("username", invite.username)?;
    table.set("inviter", invite.inviter)?;
    table.set("jid", invite.jid)?;
    table.set("uri", invite.uri)?;
    table.set("expires", invite.expires)?;
    table.set("created_at", invite.created_at)?;
    table.set("reusable", invite.reusable)?;
    table.set("allow_registration", invite.host_level)?;
    if let Value::Table(record) = record {
        // Passed through by reference: consumers read and may extend these.
        table.set("additional_data", record.raw_get::<Value>("additional_data")?)?;
        table.set("landing_page", record.raw_get::<Value>("landing_page")?)?;
    }
    Ok(table)
}

fn validated_from_table(table: &Table) -> mlua::Result<ValidatedInvite> {
    let kind: String = table.get("type")?;
    let kind = InviteType::parse(&kind).ok_or_else(|| mlua::Error::runtime("not a validated invite"))?;
    Ok(ValidatedInvite {
        token: table.get("token")?,
        kind,
        username: table.get("username")?,
        inviter: table.get("inviter")?,
        jid: table.get("jid")?,
        uri: table.get("uri")?,
        expires: table.get("expires")?,
        created_at: table.get("created_at")?,
        reusable: table.get::<Option<bool>>("reusable")?.unwrap_or(false),
        host_level: table.get::<Option<bool>>("allow_registration")?.unwrap_or(false),
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
                let record = match this.traced(|| invite::create(&request, token, now))? {
                    Ok(record) => record,
                    Err(e) => return failure(lua, e.code()),
                };
                let table = lua.create_table_with_capacity(0, 10)?;
                table.set("type", record.kind.as_str())?;
                table.set("jid", record.jid.as_str())?;
                table.set("token", record.token.as_str())?;
                table.set("allow_registration", record.allow_registration)?;
                table.set("uri", record.uri.as_str())?;
                table.set("created_at", record.created_at)?;
                table.set("expires", record.expires)?;
                table.set("reusable", record.reusable)?;
                let owner = record.contact_owner().map(str::to_owned);
                Ok(MultiValue::from_iter([Value::Table(table), Value::Boolean(record.stored_at_host_level()), owner.into_lua_value(lua)?]))
            },
        );

        // validate(token, record?, username?, user_expiry?, now) -> validated invite | nil, err
        methods.add_method(
            "validate",
            |lua, this, (token, record, username, user_expiry, now): (Value, Value, Value, Value, i64)| {
                let token = match &token {
                    Value::Nil | Value::Boolean(false) => None,
                    Value::String(s) => match s.to_str() {
                        Ok(s) => Some(s.to_owned()),
                        Err(_) => return failure(lua, Error::TokenInvalid.code()),
                    },
                    _ => return failure(lua, Error::TokenInvalid.code()),
                };
                let username = opt_string(username)?;
                let outcome = this.traced(|| {
                    let stored = stored_record(&record).inspect_err(|e| tracing::warn!("ignoring invite {token:?}: {e}"))?;
                    let redemption = match username.as_deref() {
                        None => Redemption::Account,
                        Some(username) => Redemption::Contact { username, user_expiry: seconds(&user_expiry) },
                    };
                    invite::validate(token.as_deref(), &this.host, stored.as_ref(), redemption, now)
                })?;
                match outcome {
                    Ok(invite) => Ok(MultiValue::from_iter([Value::Table(validated_table(lua, invite, &record)?)])),
                    Err(Error::MalformedRecord(_)) => failure(lua, Error::TokenInvalid.code()),
                    Err(e) => failure(lua, e.code()),
                }
            },
        );

        // use_plan(validated) -> { {user=?, token=}, ... }
        methods.add_method("use_plan", |lua, _, validated: Table| {
            keys_table(lua, invite::use_plan(&validated_from_table(&validated)?))
        });

        // revoke_plan(token, record?) -> { {user=?, token=}, ... }
        methods.add_method("revoke_plan", |lua, this, (token, record): (String, Value)| {
            let stored = this.traced(|| stored_record(&record).ok().flatten())?;
            keys_table(lua, invite::revoke_plan(&token, stored.as_ref()))
        });

        // purge_plan(map, now) -> { token, ... }
        methods.add_method("purge_plan", |lua, this, (map, now): (Table, i64)| {
            let entries = expiries(&map)?;
            let tokens = this.traced(|| invite::purge_plan(entries.iter().map(|(t, e)| (t.as_str(), *e)), now))?;
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

fn new_invites(_lua: &Lua, (host, log): (String, Function)) -> mlua::Result<Invites> {
    let diagnostics: Diagnostics = Arc::default();
    let subscriber = tracing_subscriber::registry().with(Collector(Arc::clone(&diagnostics)));
    Ok(Invites { host, log, dispatch: Dispatch::new(subscriber), diagnostics })
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
                GenerateMode::Account { roles, groups } => {
                    table.set("roles", lua.create_sequence_from(roles)?)?;
                    table.set("groups", lua.create_sequence_from(groups)?)?;
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

#[mlua::lua_module]
fn invites_core(lua: &Lua) -> mlua::Result<Table> {
    let exports = lua.create_table()?;
    exports.set("version", env!("CARGO_PKG_VERSION"))?;
    exports.set("new", lua.create_function(new_invites)?)?;
    exports.set("check_token", lua.create_function(check_token)?)?;
    exports.set("parse_period", lua.create_function(parse_period)?)?;
    exports.set("parse_flag", lua.create_function(parse_flag)?)?;
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
    Ok(exports)
}
