//! `core.new(host, log)`: the per-host state of mod_invites, as userdata.

use std::cell::RefCell;

use mlua::{Either, Function, Lua, LuaString, MultiValue, Table, UserData, UserDataMethods, Value};
use rand::TryRng;
use rand::rngs::SysRng;

use invites_rules::Error;
use invites_rules::invite::{self, InviteRequest, Redemption};
use invites_rules::plans;
use invites_rules::record::{InviteKind, InviteType};
use invites_rules::reservations::Reservations;
use invites_rules::token::{self, TOKEN_BYTES};

use crate::convert::{
    FieldNames, IntoLuaValue, RecordFields, expiries, fail, failure, host_records, keys_table, opt_string, read_record,
    read_standing, requested_data, seconds, str_field, token_list, use_plan_table, validated_from_table, validated_table,
    with_invite_facts,
};
use crate::log::Tracer;
use crate::migrate::name_key;

/// Per-host state of mod_invites; the shim owns it: the host name, the logger and the index of
/// reserved usernames.
pub(crate) struct Invites {
    host: String,
    tracer: Tracer,
    names: FieldNames,
    reservations: RefCell<Reservations>,
}

/// A fresh token from the operating system's CSPRNG; draws again when the core refuses one (one
/// in 64), giving up only if the source keeps producing refused tokens.
fn random_token() -> mlua::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    for _ in 0..64 {
        SysRng.try_fill_bytes(&mut bytes).map_err(|e| mlua::Error::runtime(format!("no random bytes: {e}")))?;
        if let Some(token) = token::new_token(&bytes) {
            return Ok(token);
        }
    }
    Err(mlua::Error::runtime("the random source keeps producing unusable tokens"))
}

impl UserData for Invites {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // create(type, username?, allow_registration, ttl, reusable?, additional_data?, now)
        //   -> record (with additional_data), facts | nil, code, text
        // facts = { host_level (stored at host level), contact_owner?, name_key?, and the
        //   record's classification (see classify): kind, creator, max_uses?, page_kind }
        // additional_data: what the rules check of it (max_uses, allow_reset, rooms).
        methods.add_method(
            "create",
            |lua,
             this,
             (kind, username, allow_registration, ttl, reusable, additional_data, now): (
                String,
                Value,
                bool,
                u64,
                Option<bool>,
                Value,
                i64,
            )| {
                let kind =
                    InviteType::parse(&kind).ok_or_else(|| mlua::Error::runtime(format!("unknown invite type '{kind}'")))?;
                let username = opt_string(username)?;
                let (max_uses, reset, rooms) = requested_data(&this.names, &additional_data)?;
                let request = InviteRequest {
                    kind,
                    host: &this.host,
                    username: username.as_deref(),
                    allow_registration,
                    ttl,
                    reusable,
                    max_uses,
                    reset,
                    rooms,
                };
                let token = random_token()?;
                let record = match this.tracer.traced(|| invite::create(&request, token, now))? {
                    Ok(record) => record,
                    Err(e) => return fail(lua, &e),
                };
                let names = &this.names;
                let table = lua.create_table_from([
                    (&names.kind, Either::Left(record.kind.as_str())),
                    (&names.jid, Either::Left(record.jid.as_str())),
                    (&names.token, Either::Left(record.token.as_str())),
                    (&names.allow_registration, Either::Right(Value::Boolean(record.allow_registration))),
                    (&names.uri, record.uri.as_deref().map_or(Either::Right(Value::Nil), Either::Left)),
                    (&names.created_at, Either::Right(record.created_at.map_or(Value::Nil, Value::Integer))),
                    (&names.expires, Either::Right(Value::Integer(record.expires))),
                    (&names.reusable, Either::Right(record.reusable.map_or(Value::Nil, Value::Boolean))),
                ])?;
                table.raw_set(&names.additional_data, additional_data)?;
                let (kind, creator, max_uses) = this.classification(lua, &table)?;
                let facts = lua.create_table_with_capacity(0, 7)?;
                facts.set("host_level", record.stored_at_host_level())?;
                facts.set("contact_owner", record.contact_owner())?;
                facts.set("name_key", record.name_key())?;
                facts.set("kind", kind.as_str())?;
                facts.set("creator", creator)?;
                facts.set("max_uses", max_uses)?;
                facts.set("page_kind", kind.page_kind())?;
                Ok(MultiValue::from_iter([Value::Table(table), Value::Table(facts)]))
            },
        );

        // validate(token, record?, username?, user_expiry?, now) -> validated invite, the account
        // that must exist (InviterChecks), the user whose entry must exist | nil, err
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
                    let read = RecordFields::read(names, &record);
                    let stored = read.and_then(|read| {
                        let stored = read.as_ref().map(|fields| fields.record(names, token.as_deref().unwrap_or_default()));
                        fields = read;
                        stored.transpose()
                    });
                    let redemption = match username.as_deref() {
                        None => Redemption::Account,
                        Some(username) => Redemption::Contact { username, user_expiry: seconds(&user_expiry) },
                    };
                    invite::validate(token.as_deref(), &this.host, stored, redemption, now)
                })?;
                match outcome {
                    Ok(invite) => {
                        let checks = invite.inviter_checks(username.is_some());
                        let (account, entry_of) = (checks.account.map(str::to_owned), checks.entry_of.map(str::to_owned));
                        let table = validated_table(lua, names, invite, &token_value, &username_value, fields.as_ref())?;
                        Ok(MultiValue::from_iter([
                            Value::Table(table),
                            account.into_lua_value(lua)?,
                            entry_of.into_lua_value(lua)?,
                        ]))
                    }
                    Err(e) => failure(lua, e.code()),
                }
            },
        );

        // use_plan(validated, standing, records_use) -> { keys = { {user=?, token=}, ... }, consume }
        //   | nil, code, reason: what a use of the invite get() returned does to storage, with
        //   standing = { record?, audit? } as read just before (see Standing); records_use: the
        //   use is recorded (a registration, an approval), else the stock API's invite:use().
        methods.add_method("use_plan", |lua, this, (validated, standing, records_use): (Table, Value, bool)| {
            let standing = match read_standing(&this.names, &validated, &standing) {
                Ok(Some(standing)) => standing,
                Ok(None) => return fail(lua, &Error::Internal),
                Err(e) => return fail(lua, &e),
            };
            let Ok(invite) = validated_from_table(&this.names, &validated) else {
                return fail(lua, &Error::BadField("invite"));
            };
            let plan = plans::use_plan(&invite, standing.usage, records_use);
            Ok(MultiValue::from_iter([Value::Table(use_plan_table(lua, &this.names, plan)?)]))
        });

        // revoke_plan(token, record?, audit_jid?) -> { {user=?, token=}, ... }; audit_jid: the
        // jid of the invite's audit record, which names the inviter of a contact-only invite
        // (one without a host-level record)
        methods.add_method("revoke_plan", |lua, this, (token, record, audit_jid): (String, Value, Option<String>)| {
            let keys = this
                .tracer
                .traced(|| plans::revoke_plan(&token, read_record(&this.names, &token, &record), audit_jid.as_deref()))?;
            keys_table(lua, &this.names, keys)
        });

        // purge_plan(map, now) -> { token, ... }
        methods.add_method("purge_plan", |lua, this, (map, now): (Table, i64)| {
            let entries = expiries(&map)?;
            let tokens = this.tracer.traced(|| plans::purge_plan(entries.iter().map(|(t, e)| (t.as_str(), *e)), now))?;
            token_list(lua, tokens)
        });

        // pending(host_map, now) -> { token, ... } soonest expiry first
        methods.add_method("pending", |lua, _, (map, now): (Table, i64)| {
            let entries = expiries(&map)?;
            token_list(lua, plans::pending(entries.iter().map(|(t, e)| (t.as_str(), *e)), now))
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
            token_list(lua, plans::deleted_user_plan(entries.iter().map(|(t, j)| (t.as_str(), j.as_str())), &username))
        });

        // classify(invite) -> kind, creator, max_uses, page_kind: what mod_invites' audit records and
        // statistics call any invite table (stored record, new or validated invite), read with
        // ordinary indexing.
        //   kind: "account-and-contact" / "contact" for type "roster" (allow_registration truthy
        //     or not), else "reset" / "account" (additional_data.allow_reset truthy or not);
        //   creator: additional_data.source when a non-empty string (its util.jid.bare when it
        //     contains '@' and is a JID), else for type "roster" the node of jid, or inviter, or
        //     username, "@" host ("unknown" when none), else "module";
        //   max_uses: additional_data.max_uses when an integer >= 1 (not 2.0), else nil;
        //   page_kind: the kind invites_page_supports names (InviteKind::page_kind).
        // An additional_data that is not a table counts as empty. Raises for a jid other than a
        // string, nil or false, or an inviter/username other than a string, number, nil or
        // false, when it comes to be used; and for an invite that is not a table.
        methods.add_method("classify", |lua, this, invite: Table| {
            let (kind, creator, max_uses) = this.classification(lua, &invite)?;
            Ok((kind.as_str(), creator, max_uses, kind.page_kind()))
        });

        // reservations_load(host_map, now): rebuilds the index of reserved usernames
        methods.add_method("reservations_load", |_, this, (map, now): (Table, i64)| {
            let records = host_records(&this.names, &map);
            this.reservations_mut()?.load(records, now);
            Ok(())
        });

        // reservation_add(token, record, now): a host-level record this process just stored
        methods.add_method("reservation_add", |_, this, (token, record, now): (String, Value, i64)| {
            let mut reservations = this.reservations_mut()?;
            // Until the index is loaded, the load will find the record: nothing to read now.
            if reservations.is_loaded() {
                reservations.add(read_record(&this.names, &token, &record), now);
            }
            Ok(())
        });

        // name_key(record) -> username | nil: the name the per-invite layout indexes a stored
        // record under (Record::name_key); nil for records that cannot be read.
        methods.add_method("name_key", |_, this, (token, record): (String, Value)| Ok(name_key(&this.names, &token, &record)));

        // entry_owner(audit) -> username | nil: the user whose user-level entry holds a
        // contact-only invite, from its audit record (plans::entry_owner)
        methods.add_method("entry_owner", |_, _, audit: Table| {
            let (kind, jid) = (str_field(&audit, "kind"), str_field(&audit, "jid"));
            Ok(kind.zip(jid).and_then(|(kind, jid)| plans::entry_owner(&kind, &jid).map(str::to_owned)))
        });

        // removed(token): a host-level record this process just removed (it reserves no name)
        methods.add_method("removed", |_, this, token: String| {
            this.reservations_mut()?.remove(&token);
            Ok(())
        });

        // reservations_loaded() -> whether the index has been loaded (else: reservations_load)
        methods.add_method("reservations_loaded", |_, this, ()| Ok(this.reservations_mut()?.is_loaded()));

        // reservation_candidates(username) -> { token, ... }: the invites that may reserve it,
        // earliest expiry first; the shim reads each record and asks reservation_confirm.
        methods.add_method("reservation_candidates", |lua, this, username: String| {
            lua.create_sequence_from(this.reservations_mut()?.candidates(&username))
        });

        // reservation_confirm(username, token, record?, now) -> whether the record (as read now;
        // nil: gone) still reserves the name; one that does not leaves the index.
        methods.add_method("reservation_confirm", |_, this, (username, token, record, now): (String, String, Value, i64)| {
            let record = read_record(&this.names, &token, &record);
            let mut reservations = this.reservations_mut()?;
            this.tracer.traced(|| reservations.confirm(&username, &token, record, now))
        });

        // Moving invites between the storage layouts (src/migrate.rs): one crossing per batch.
        // migrate_batch(total) -> how many invites a batch of the move holds
        methods.add_method("migrate_batch", |_, _, total: usize| Ok(invites_rules::migrate::batch_size(total)));
        methods.add_method("migrate_in", |lua, this, args| crate::migrate::migrate_in(lua, &this.names, args));
        methods.add_method("migrate_out", |lua, this, args| crate::migrate::migrate_out(lua, &this.names, args));
        methods.add_method("migrate_already", |_, _, (host_map, moved): (Table, Table)| {
            crate::migrate::migrate_already(&host_map, &moved)
        });
    }
}

impl Invites {
    /// What an invite table is (see `classify`): its kind, creator and use limit.
    fn classification(&self, lua: &Lua, invite: &Table) -> mlua::Result<(InviteKind, LuaString, Option<u32>)> {
        let (kind, creator, max_uses) = with_invite_facts(lua, &self.names, invite, |facts| {
            let creator = facts.creator(&self.host).map(|creator| lua.create_string(creator));
            (facts.kind(), creator, facts.max_uses())
        })?;
        let creator = creator.map_err(|e| mlua::Error::runtime(e.to_string()))??;
        Ok((kind, creator, max_uses))
    }

    /// The reservation index, for one call (a re-entrant call is refused with an error rather
    /// than a panic).
    fn reservations_mut(&self) -> mlua::Result<std::cell::RefMut<'_, Reservations>> {
        self.reservations.try_borrow_mut().map_err(|_| mlua::Error::runtime("reservation index busy"))
    }
}

/// `core.new(host, log)`
pub(crate) fn new(lua: &Lua, (host, log): (String, Function)) -> mlua::Result<Invites> {
    Ok(Invites { host, tracer: Tracer::new(log), names: FieldNames::new(lua)?, reservations: RefCell::default() })
}
