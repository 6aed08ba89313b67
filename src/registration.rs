//! mod_invites_register: per-host registration state (pre-auth throttle, single-use claims) and
//! the XEP-0379 / XEP-0445 rules of `invites_rules::register`.

use mlua::{Function, Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use invites_rules::Error;
use invites_rules::claims::Claims;
use invites_rules::jid;
use invites_rules::net::Exemptions;
use invites_rules::plans::Standing;
use invites_rules::record::InviteType;
use invites_rules::register::{self as reg, NewAccount, PresentedInvite, Registering, Reservation};
use invites_rules::roles::role_names;
use invites_rules::subscription;
use invites_rules::throttle::{PreauthGate, PreauthStep, ThrottleConfig};

use crate::convert::{
    FieldNames, error_of, fail, opt_plain_string, read_standing, required_bool, required_str, role_entries, seconds, str_field,
    use_plan_table, validated_from_table,
};
use crate::log::Tracer;

/// Per-host state of mod_invites_register; the shim owns it (never process-global).
pub(crate) struct Registration {
    tracer: Tracer,
    gate: PreauthGate,
    claims: Claims,
    names: FieldNames,
    /// Prepares a name for comparison (mod_invites' `prep_username`; nodeprep lives in Prosody).
    prep: Option<Function>,
}

/// The names a presented invite is compared by, prepared, and what storage holds of it.
struct Presented {
    token: String,
    kind: InviteType,
    jid: Option<String>,
    username: Option<String>,
    allow_reset: Option<String>,
    reusable: bool,
    standing: Option<Standing>,
}

impl Presented {
    fn as_invite(&self) -> PresentedInvite<'_> {
        PresentedInvite {
            token: &self.token,
            kind: self.kind,
            jid: self.jid.as_deref(),
            username: self.username.as_deref(),
            allow_reset: self.allow_reset.as_deref(),
            reusable: self.reusable,
            standing: self.standing,
        }
    }
}

impl Registration {
    /// A name as the shim's `prep` prepares it; one that does not prepare stays as it is, so it
    /// can match no registration (a restriction is never lost).
    fn prepared(&self, name: Option<String>) -> mlua::Result<Option<String>> {
        match (name, &self.prep) {
            (Some(name), Some(prep)) => Ok(Some(prep.call::<Option<String>>(name.as_str())?.unwrap_or(name))),
            (name, _) => Ok(name),
        }
    }

    /// The invite get() returned, as a registration presents it, with its `standing`. A missing
    /// or mistyped field refuses the registration (fail closed).
    fn presented(&self, invite: &Table, standing: &Value) -> mlua::Result<Result<Presented, Error>> {
        let facts = || -> Result<_, Error> {
            let kind = InviteType::parse(&required_str(invite, "type")?).ok_or(Error::BadField("type"))?;
            Ok((
                required_str(invite, "token")?,
                kind,
                required_bool(invite, "reusable")?,
                read_standing(&self.names, invite, standing)?,
            ))
        };
        let (token, kind, reusable, standing) = match facts() {
            Ok(facts) => facts,
            Err(e) => return Ok(Err(e)),
        };
        let jid = match str_field(invite, "jid") {
            Some(jid) => match jid::split(&jid) {
                jid::Parts { node: Some(node), domain, .. } => {
                    Some(format!("{}@{domain}", self.prepared(Some(node.to_owned()))?.unwrap_or_default()))
                }
                _ => Some(jid),
            },
            None => None,
        };
        let allow_reset = match invite.raw_get::<Value>(&self.names.additional_data)? {
            Value::Table(data) => str_field(&data, "allow_reset"),
            _ => None,
        };
        Ok(Ok(Presented {
            token,
            kind,
            jid,
            username: self.prepared(str_field(invite, "username"))?,
            allow_reset: self.prepared(allow_reset)?,
            reusable,
            standing,
        }))
    }

    /// A pre-auth refusal, counted against `ip` when it counts as a failed attempt. That this
    /// failure throttles the address is logged by the core (the tracer), so the shim needs only
    /// the refusal.
    fn refuse(&mut self, lua: &Lua, ip: Option<&str>, error: &Error, counts: bool, now: i64) -> mlua::Result<MultiValue> {
        if counts {
            let gate = &mut self.gate;
            self.tracer.traced(|| gate.record_failure(ip, now))?;
        }
        fail(lua, error)
    }
}

impl UserData for Registration {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // Refusals below are `nil, code, reason`; `core.stanza_error(code)` is the error to send.

        // preauth(ip?, iq_type, token?, now) -> true (look the token up) | nil, code, reason
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
                PreauthStep::Refuse { error, counts } => this.refuse(lua, ip.as_deref(), &error, counts, now),
            }
        });

        // preauth_failed(ip?, code, now) -> nil, code, reason: the token lookup failed with
        // `code` (mod_invites' `get`).
        methods.add_method_mut("preauth_failed", |lua, this, (ip, code, now): (Value, Value, i64)| {
            let ip = opt_plain_string(&ip);
            let (error, counts) = PreauthGate::lookup_failed(&error_of(&code, &Value::Nil));
            this.refuse(lua, ip.as_deref(), &error, counts, now)
        });

        // registering(request, holder, now) -> true | allow_reset (the account the invite resets)
        //   | nil, code, reason
        // request = { invite_only, username, account_exists, reserved_by? (token, or false when the
        //   lookup failed), invite? (as get() returned it), standing? (mod_invites' standing() of
        //   it, or false when storage failed) }
        methods.add_method_mut("registering", |lua, this, (request, holder, now): (Table, u64, i64)| {
            let username = str_field(&request, "username").unwrap_or_default();
            // None: the lookup failed.
            let reserved_by = match request.raw_get::<Value>("reserved_by")? {
                Value::Boolean(false) => None,
                other => Some(opt_plain_string(&other)),
            };
            let facts = match (required_bool(&request, "invite_only"), required_bool(&request, "account_exists")) {
                (Ok(invite_only), Ok(account_exists)) => (invite_only, account_exists),
                (Err(e), _) | (_, Err(e)) => return fail(lua, &e),
            };
            let presented = match request.raw_get::<Value>("invite")? {
                Value::Table(invite) => match this.presented(&invite, &request.raw_get("standing")?)? {
                    Ok(presented) => Some(presented),
                    Err(e) => return fail(lua, &e),
                },
                _ => None,
            };
            let facts = Registering {
                invite_only: facts.0,
                username: &username,
                account_exists: facts.1,
                invite: presented.as_ref().map(Presented::as_invite),
                reservation: match &reserved_by {
                    None => Reservation::Unknown,
                    Some(None) => Reservation::Free,
                    Some(Some(token)) => Reservation::By(token),
                },
            };
            let claims = &mut this.claims;
            let outcome = this.tracer.traced(|| -> Result<reg::Allowed, Error> {
                let allowed = reg::decide_registration(&facts)?;
                if let Some(claim) = &allowed.claim {
                    claims.claim(claim, holder, now)?;
                }
                Ok(allowed)
            })?;
            match outcome {
                Ok(reg::Allowed { allow_reset: Some(account), .. }) => {
                    Ok(MultiValue::from_iter([Value::String(lua.create_string(account)?)]))
                }
                Ok(_) => Ok(MultiValue::from_iter([Value::Boolean(true)])),
                Err(refusal) => fail(lua, &refusal),
            }
        });

        // registered(invite, holder?, facts) -> plan | nil, code, reason (not redeemed)
        // The one decision of a finished registration or reset with the invite get() returned:
        // facts = { username, inviter? (prepared), inviter_exists, standing (mod_invites'
        //   standing() of the invite, read just before; false when storage failed) }
        // plan = { keys = { {user=?, token=}, ... } (what the use deletes), consume,
        //   befriend = inviter?, roles = { role = true }?, role_list = { role, ... }? }, for
        //   mod_invites' redeem(invite, account, how, plan, standing) and the roster and roles;
        //   owed = true instead of keys and consume when storage could not tell (redeem then reads
        //   and plans again).
        methods.add_method_mut("registered", |lua, this, (invite, holder, facts): (Table, Option<u64>, Table)| {
            let required = || -> Result<_, Error> {
                let username = required_str(&facts, "username")?;
                let inviter_exists = required_bool(&facts, "inviter_exists")?;
                let standing = read_standing(&this.names, &invite, &facts.raw_get("standing").unwrap_or(Value::Nil))?;
                Ok((username, inviter_exists, standing))
            };
            let (username, inviter_exists, standing) = match required() {
                Ok(facts) => facts,
                Err(e) => return fail(lua, &e),
            };
            let Ok(validated) = validated_from_table(&this.names, &invite) else {
                return fail(lua, &Error::BadField("invite"));
            };
            let settlement = this.claims.settle(&validated.token, holder);
            let inviter = str_field(&facts, "inviter");
            let account = NewAccount { username: &username, inviter: inviter.as_deref(), inviter_exists };
            let roles = match invite.raw_get::<Value>(&this.names.additional_data)? {
                Value::Table(data) => role_names(role_entries(&data.raw_get::<Value>("roles")?)),
                _ => Vec::new(),
            };
            let welcome = match reg::welcome(settlement, &validated, standing, account, roles) {
                Ok(welcome) => welcome,
                Err(refusal) => return fail(lua, &refusal),
            };
            let table = match welcome.use_plan {
                Some(plan) => use_plan_table(lua, &this.names, plan)?,
                None => lua.create_table_from([("owed", true)])?,
            };
            table.set("befriend", welcome.befriend)?;
            if !welcome.roles.is_empty() {
                // The 0.12 `roles` store wants a map; Prosody 13 wants the primary role first.
                let roles = lua.create_table_with_capacity(0, welcome.roles.len())?;
                for role in &welcome.roles {
                    roles.set(role.as_str(), true)?;
                }
                table.set("roles", roles)?;
                table.set("role_list", lua.create_sequence_from(welcome.roles)?)?;
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

/// `core.new_registration(host, log, options?)`; options: `max_failures`, `failure_window`,
/// `exempt` (list of addresses or CIDR networks), `ipv6_prefix`, `prep` (prepares a name for
/// comparison: `prep(name) -> prepared | nil`).
/// `host` mirrors `core.new`; the rules need no host name.
pub(crate) fn new_registration(
    lua: &Lua,
    (_host, log, options): (String, Function, Option<Table>),
) -> mlua::Result<Registration> {
    let tracer = Tracer::new(log);
    let mut config = ThrottleConfig::default();
    let mut prep = None;
    if let Some(options) = options {
        prep = options.raw_get::<Option<Function>>("prep")?;
        config = config.with_options(
            seconds(&options.raw_get("max_failures")?),
            seconds(&options.raw_get("failure_window")?),
            seconds(&options.raw_get("ipv6_prefix")?),
        );
        if let Value::Table(list) = options.raw_get::<Value>("exempt")? {
            let entries: Vec<String> = list.sequence_values::<Value>().flatten().filter_map(|v| opt_plain_string(&v)).collect();
            let (exempt, bad) = Exemptions::parse(entries.iter().map(String::as_str));
            for entry in bad {
                tracer.log.call::<()>(("warn", format!("ignoring invalid address in the throttle exemptions: {entry}")))?;
            }
            config.exempt = exempt;
        }
    }
    Ok(Registration { tracer, gate: PreauthGate::new(config), claims: Claims::new(), names: FieldNames::new(lua)?, prep })
}

/// `core.contact_token(presence_type?, token?, from_bare, to_bare)` -> token | nil (not a
/// pre-authenticated subscription: an answer, not a failure)
pub(crate) fn contact_token(
    _lua: &Lua,
    (presence_type, token, from_bare, to_bare): (Value, Value, String, String),
) -> mlua::Result<Option<String>> {
    let presence_type = opt_plain_string(&presence_type);
    let token = opt_plain_string(&token);
    Ok(subscription::contact_token(presence_type.as_deref(), token.as_deref(), &from_bare, &to_bare).map(str::to_owned))
}

/// `core.advertise_features(session_type, secure, require_encryption)` -> whether the stream
/// gets the invite registration features
pub(crate) fn advertise_features(_lua: &Lua, (kind, secure, required): (String, bool, bool)) -> mlua::Result<bool> {
    Ok(reg::advertise_features(&kind, secure, required))
}

/// `core.registration_possible(invites_register_loaded, register_ibr_loaded, register_web_loaded)`
/// -> whether invitees can register on the host (a contact invite may promise ibr=y)
pub(crate) fn registration_possible(_lua: &Lua, (ours, ibr, web): (bool, bool, bool)) -> mlua::Result<bool> {
    Ok(reg::registration_possible(ours, ibr, web))
}
