//! invites_core: the Lua module (`require "invites_core"`), the binding of the rules in
//! `invites_rules` (crates/rules) to Lua; the package is `invites-lua`.
//!
//! It converts Lua values to core types and back, draws token bytes from the OS random source,
//! hands the core's [`invites_rules::Error`] to Lua as `nil, code, text` (reading codes that come
//! back once, with `Error::from_code`) and forwards the core's `tracing` diagnostics to the
//! logger the shim passes in. Misuse (a wrong argument type) raises a Lua error; expected
//! failures never do.
//!
//! # Exports
//!
//! `invites_core` (below) builds the module's table in one place: one line per export, grouped by
//! feature, each under a comment giving its Lua signature. One naming rule, which the `export!`
//! macro keeps: a function's Lua name is the name of the Rust function behind it, a named
//! function in the module of its feature (`notify` and `tree` share `telling.rs`). A feature with
//! a Lua lib of its own has its exports in a sub-table named after it (`adhoc`, `rooms`, `roles`,
//! `notify`, `tree`), where the Rust function carries the feature's name in front (`rooms.plan` is
//! `rooms::rooms_plan`); the rest (the invite store, registration, the shell verbs, the web page's
//! QR code, the configuration check and what the shims share) are flat, as the shims have always
//! called them. A constant's Lua name is the Rust constant's in lower case (in a sub-table,
//! without the feature's name); a table or text made once is named after the Rust function that
//! makes it. `spec/binding_exports_spec.lua` pins the names, so a new export comes with its
//! documented line here and its name there.

mod adhoc;
mod convert;
mod errors;
mod generate;
mod invites;
mod lifecycle;
mod log;
mod migrate;
mod registration;
mod roles;
mod rooms;
mod shell;
mod telling;
mod values;
mod web;

use mlua::{Lua, Table};

use invites_rules::{generate as rules_generate, invite, shell as rules_shell};

/// The binding's version (the package's).
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `export!(lua, table, module::function)` sets `table.function`; `export!(lua, table / "feature",
/// module::feature_function)` sets `table.function` in the feature's sub-table. The Lua name is
/// the Rust function's, so the naming rule holds by construction.
macro_rules! export {
    ($lua:ident, $table:ident, $module:ident :: $function:ident) => {
        $table.set(stringify!($function), $lua.create_function($module::$function)?)?
    };
    ($lua:ident, $table:ident / $feature:literal, $module:ident :: $function:ident) => {
        $table.set(
            stringify!($function).strip_prefix(concat!($feature, "_")).unwrap_or(stringify!($function)),
            $lua.create_function($module::$function)?,
        )?
    };
}

// skip_memory_check: Prosody gives Lua no memory limit, so an allocation fails only when the whole
// process is out of memory. mlua then pushes strings and stores table fields directly instead of
// wrapping each in a protected call, which halves the cost of every call into this library
// (`make bench`, figure 1).
#[mlua::lua_module(skip_memory_check)]
fn invites_core(lua: &Lua) -> mlua::Result<Table> {
    let exports = lua.create_table()?;
    // version: "x.y.z"
    exports.set("version", VERSION)?;

    // The invite store (mod_invites)
    // new(host, log) -> the store of one host (its methods: src/invites.rs)
    export!(lua, exports, invites::new);
    // default_ttl, default_reset_ttl: seconds an invite, a reset link lives by default
    exports.set("default_ttl", invite::DEFAULT_TTL)?;
    exports.set("default_reset_ttl", invite::DEFAULT_RESET_TTL)?;
    // lifecycle(facts, now, retention) -> { state, uses_left?, purge_audit, revoke_removes, revoke_records }
    //   | nil, code, text
    export!(lua, exports, lifecycle::lifecycle);
    // quota_check(created_at_list, pending, quota?, max_pending?, now) -> true | nil, "quota-exceeded", text
    export!(lua, exports, lifecycle::quota_check);

    // Plain values, shared by the shims
    // check_token(token) -> true | nil, code, text
    export!(lua, exports, values::check_token);
    // redact(token) -> what a log line may show of it (a short prefix)
    export!(lua, exports, values::redact);
    // parse_period(text | seconds) -> seconds | nil, code, text
    export!(lua, exports, values::parse_period);
    // option_period(value) -> seconds, ambiguous | nil, "bad-request", text: a period option
    export!(lua, exports, values::option_period);
    // parse_uses(text) -> n | nil, "bad-request", text: `--uses N` and the ad-hoc form's limit
    export!(lua, exports, generate::parse_uses);
    // ns: { name = namespace, ... }
    exports.set("ns", values::ns(lua)?)?;

    // Errors
    // stanza_error(code, text?, host?) -> { type, condition, text }
    export!(lua, exports, errors::stanza_error);
    // error_text(code, text?) -> the reason in words
    export!(lua, exports, errors::error_text);
    // codes: { token_invalid = "token-invalid", ... }, every error code; reading another name raises
    exports.set("codes", convert::codes(lua)?)?;

    // Registration (mod_invites_register, mod_invites)
    // new_registration(host, log, options?) -> the registration gate (its methods: src/registration.rs)
    export!(lua, exports, registration::new_registration);
    // advertise_features(session_type, secure, require_encryption) -> boolean
    export!(lua, exports, registration::advertise_features);
    // contact_token(presence_type?, token?, from_bare, to_bare) -> token | nil
    export!(lua, exports, registration::contact_token);
    // registration_possible(invites_register_loaded, register_ibr_loaded, register_web_loaded) -> boolean
    export!(lua, exports, registration::registration_possible);

    // The admin shell and prosodyctl (invites_admin.lib)
    // shell_commands: { { name, desc, args, flags, usage, prosodyctl_usage?, ... }, ... }
    exports.set("shell_commands", shell::shell_commands(lua)?)?;
    // prosodyctl_usage: "usage: prosodyctl mod_invites generate|list|... HOST [options] ..."
    exports.set("prosodyctl_usage", rules_shell::prosodyctl_usage())?;
    // parse_shell_args(verb, words) -> args, flags | nil, "bad-request", text
    export!(lua, exports, shell::parse_shell_args);
    // parse_flag(value?) -> boolean | nil, "bad-request", text
    export!(lua, exports, shell::parse_flag);
    // parse_generate(args) -> { help = true } | { host, expires_after?, ... } | nil, "bad-request", text
    export!(lua, exports, generate::parse_generate);
    // generate_usage: the text of `prosodyctl mod_invites generate --help`
    exports.set("generate_usage", rules_generate::GENERATE_USAGE)?;

    // mod_invites_web
    // qr_svg(text, title) -> inline `<svg>` markup | nil, code, text
    export!(lua, exports, web::qr_svg);

    // The configuration check (invites_check.lib)
    // check(facts) -> { { code, text }, ... }
    export!(lua, exports, telling::check);

    // adhoc: the XEP-0401 ad-hoc commands (mod_invites_adhoc)
    let adhoc_table = lua.create_table()?;
    // adhoc.policy(options) -> the commands' policy (its methods: src/adhoc.rs)
    export!(lua, adhoc_table / "adhoc", adhoc::adhoc_policy);
    // adhoc.requested_username(raw, prepped) -> name | false | nil, code, text
    export!(lua, adhoc_table / "adhoc", adhoc::adhoc_requested_username);
    // adhoc.account_invite(username | false, { exists, reserved }, subscribe, requester_local) -> { username?, subscribe } | nil, code, text
    export!(lua, adhoc_table / "adhoc", adhoc::adhoc_account_invite);
    // adhoc.reset_account(accountjid, host) -> username | nil, code, text
    export!(lua, adhoc_table / "adhoc", adhoc::adhoc_reset_account);
    // adhoc.invitation_fields(uri, landing_page?, expires) -> util.dataforms fields
    export!(lua, adhoc_table / "adhoc", adhoc::adhoc_invitation_fields);
    // adhoc.invitation_title: the result form's title
    adhoc_table.set("invitation_title", invites_rules::adhoc::INVITATION_TITLE)?;
    exports.set("adhoc", adhoc_table)?;

    // rooms: the group chats an invite carries (invites_rooms.lib)
    let rooms_table = lua.create_table()?;
    // rooms.default_max: most group chats one invite may carry
    rooms_table.set("default_max", invites_rules::rooms::DEFAULT_MAX_ROOMS)?;
    // rooms.normalise(inputs, max) -> { { jid, autojoin }, ... } | nil, code, text
    export!(lua, rooms_table / "rooms", rooms::rooms_normalise);
    // rooms.check(room, facts, requester) -> true, "room" | "service" | nil, code, text
    export!(lua, rooms_table / "rooms", rooms::rooms_check);
    // rooms.plan(affiliation?) -> "grant" | "keep" | "banned", outcome, welcomes
    export!(lua, rooms_table / "rooms", rooms::rooms_plan);
    // rooms.remove_on_delete(affiliation?) -> boolean
    export!(lua, rooms_table / "rooms", rooms::rooms_remove_on_delete);
    // rooms.refused_outcome(code, text?) -> outcome
    export!(lua, rooms_table / "rooms", rooms::rooms_refused_outcome);
    // rooms.invitation_mode(option?) -> "inviter" | "room" | "none" | nil, "bad-request", text
    export!(lua, rooms_table / "rooms", rooms::rooms_invitation_mode);
    // rooms.invitation_sender(mode, inviter?, room) -> jid | nil
    export!(lua, rooms_table / "rooms", rooms::rooms_invitation_sender);
    // rooms.invitation_reason(inviter?, room_name?, room) -> text
    export!(lua, rooms_table / "rooms", rooms::rooms_invitation_reason);
    exports.set("rooms", rooms_table)?;

    // roles: the roles an invite grants (invites_admin.lib)
    let roles_table = lua.create_table()?;
    // roles.names(roles) -> { role, ... }
    export!(lua, roles_table / "roles", roles::roles_names);
    // roles.stored(list, version) -> what additional_data.roles holds on that release | nil
    export!(lua, roles_table / "roles", roles::roles_stored);
    exports.set("roles", roles_table)?;

    // notify: telling the inviter (invites_notify.lib)
    let notify_table = lua.create_table()?;
    // notify.recipient(facts) -> bare JID | nil, why
    export!(lua, notify_table / "notify", telling::notify_recipient);
    // notify.message(candidates, how, account, room_results?) -> text, lang
    export!(lua, notify_table / "notify", telling::notify_message);
    exports.set("notify", notify_table)?;

    // tree: who invited whom (invites_tree.lib)
    let tree_table = lua.create_table()?;
    // tree.build(uses, root) -> { lines, members, size }
    export!(lua, tree_table / "tree", telling::tree_build);
    // tree.cap_check(uses, creator, max) -> true | nil, "quota-exceeded", text
    export!(lua, tree_table / "tree", telling::tree_cap_check);
    // tree.is_account(creator) -> boolean
    export!(lua, tree_table / "tree", telling::tree_is_account);
    exports.set("tree", tree_table)?;
    Ok(exports)
}
