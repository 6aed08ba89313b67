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
    let roster_subscription = match table.raw_get::<Value>("additional_data") {
        Ok(Value::Table(data)) => match data.raw_get::<Value>("roster_subscription") {
            Ok(Value::String(creator)) => creator.to_str().ok().map(|s| s.to_owned()),
            _ => None,
        },
        _ => None,
    };
    Ok(Some(StoredRecord { kind, jid, expires, created_at, uri: text("uri")?, reusable, roster_subscription }))
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

// ---------------------------------------------------------------------------------------------
// mod_invites_register: per-host registration state (pre-auth throttle, single-use claims) and
// the XEP-0379 / XEP-0445 rules of `crate::register`.

use crate::register::{
    self as reg, Claims, Exemptions, PreauthGate, PreauthStep, PresentedInvite, Registering, ReservationEntry, RoleEntry,
    Settlement, StanzaError, ThrottleConfig,
};

/// Per-host state of mod_invites_register; the shim owns it (never process-global).
struct Registration {
    /// Host name, logger and diagnostics forwarding, shared with the invites userdata.
    tracer: Invites,
    gate: PreauthGate,
    claims: Claims,
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

        // reservation(host_records, username, now) -> token | nil
        methods.add_method("reservation", |_, _, (records, username, now): (Value, String, i64)| {
            let Value::Table(records) = records else { return Ok(None) };
            let mut owned = Vec::new();
            for (token, record) in records.pairs::<Value, Value>().flatten() {
                let (Value::String(token), Value::Table(record)) = (token, record) else { continue };
                let Ok(token) = token.to_str().map(|t| t.to_owned()) else { continue };
                let kind = str_field(&record, "type").as_deref().and_then(InviteType::parse);
                let (Some(kind), Some(jid)) = (kind, str_field(&record, "jid")) else { continue };
                let Some(expires) = seconds(&record.raw_get("expires").unwrap_or(Value::Nil)) else { continue };
                let reset = match record.raw_get::<Value>("additional_data") {
                    Ok(Value::Table(data)) => !matches!(data.raw_get::<Value>("allow_reset"), Ok(Value::Nil) | Err(_)),
                    _ => false,
                };
                owned.push((token, kind, jid, expires, reset));
            }
            let entries = owned.iter().map(|(token, kind, jid, expires, reset)| ReservationEntry {
                token,
                kind: *kind,
                jid,
                expires: *expires,
                reset: *reset,
            });
            Ok(reg::reservation(entries, &username, now).map(str::to_owned))
        });

        // registering(request, holder, now) -> true, allow_reset? | false, error
        // request = { invite_only, username, account_exists, reserved_by?, invite? = { token, type,
        //   jid?, username?, allow_reset?, reusable, still_stored } }
        methods.add_method_mut("registering", |lua, this, (request, holder, now): (Table, u64, i64)| {
            let username = str_field(&request, "username").unwrap_or_default();
            let reserved_by = str_field(&request, "reserved_by");
            let invite = match request.raw_get::<Value>("invite")? {
                Value::Table(invite) => Some((
                    str_field(&invite, "token").unwrap_or_default(),
                    str_field(&invite, "type").as_deref().and_then(InviteType::parse).unwrap_or(InviteType::Register),
                    str_field(&invite, "jid"),
                    str_field(&invite, "username"),
                    str_field(&invite, "allow_reset"),
                    bool_field(&invite, "reusable"),
                    bool_field(&invite, "still_stored"),
                )),
                _ => None,
            };
            let facts = Registering {
                invite_only: bool_field(&request, "invite_only"),
                username: &username,
                account_exists: bool_field(&request, "account_exists"),
                invite: invite.as_ref().map(|(token, kind, jid, name, allow_reset, reusable, still_stored)| PresentedInvite {
                    token,
                    kind: *kind,
                    jid: jid.as_deref(),
                    username: name.as_deref(),
                    allow_reset: allow_reset.as_deref(),
                    reusable: *reusable,
                    still_stored: *still_stored,
                }),
                reserved_by: reserved_by.as_deref(),
            };
            let claims = &mut this.claims;
            let outcome = this.tracer.traced(|| -> Result<reg::Allowed, reg::Refusal> {
                let allowed = reg::decide_registration(&facts)?;
                if let Some(token) = &allowed.claim {
                    claims.claim(token, holder, now)?;
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
        // facts = { username, inviter?, inviter_exists, still_stored, roles? }
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
/// `exempt` (list of addresses or CIDR networks).
fn new_registration(lua: &Lua, (host, log, options): (String, Function, Option<Table>)) -> mlua::Result<Registration> {
    let tracer = new_invites(lua, (host, log))?;
    let mut config = ThrottleConfig::default();
    if let Some(options) = options {
        if let Some(max) = seconds(&options.raw_get("max_failures")?) {
            config.max_failures = u32::try_from(max.max(0)).unwrap_or(u32::MAX);
        }
        if let Some(window) = seconds(&options.raw_get("failure_window")?) {
            config.window = window.max(0);
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

/// `core.adhoc.reserved(host_records, username, now)` -> whether a pending invite reserves the name
fn adhoc_reserved(_lua: &Lua, (records, username, now): (Value, String, i64)) -> mlua::Result<bool> {
    let Value::Table(records) = records else { return Ok(false) };
    let mut owned = Vec::new();
    for (token, record) in records.pairs::<Value, Value>().flatten() {
        let (Value::String(token), Value::Table(record)) = (token, record) else { continue };
        let Ok(token) = token.to_str().map(|t| t.to_owned()) else { continue };
        let kind = str_field(&record, "type").as_deref().and_then(InviteType::parse);
        let (Some(kind), Some(jid)) = (kind, str_field(&record, "jid")) else { continue };
        let Some(expires) = seconds(&record.raw_get("expires").unwrap_or(Value::Nil)) else { continue };
        let reset = match record.raw_get::<Value>("additional_data") {
            Ok(Value::Table(data)) => truthy(&data.raw_get("allow_reset").unwrap_or(Value::Nil)),
            _ => false,
        };
        owned.push((token, kind, jid, expires, reset));
    }
    let entries = owned.iter().map(|(token, kind, jid, expires, reset)| ReservationEntry {
        token,
        kind: *kind,
        jid,
        expires: *expires,
        reset: *reset,
    });
    Ok(reg::reservation(entries, &username, now).is_some())
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
    table.set("reserved", lua.create_function(adhoc_reserved)?)?;
    table.set("reset_account", lua.create_function(adhoc_reset_account)?)?;
    table.set("invitation_fields", lua.create_function(adhoc_invitation_fields)?)?;
    table.set("command_error", lua.create_function(adhoc_command_error)?)?;
    table.set("invitation_title", adhoc::INVITATION_TITLE)?;
    Ok(table)
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
    Ok(exports)
}
