//! invites_core: the Lua module (`require "invites_core"`), the binding of the rules in
//! `invites_rules` (crates/rules) to Lua; the package is `invites-lua`.
//!
//! It converts Lua values to core types and back, draws token bytes from the OS random source,
//! hands the core's [`invites_rules::Error`] to Lua as `nil, code, text` (reading codes that come
//! back once, with `Error::from_code`) and forwards the core's `tracing` diagnostics to the
//! logger the shim passes in. Misuse (a wrong argument type) raises a Lua error; expected
//! failures never do.

mod adhoc;
mod convert;
mod invites;
mod lifecycle;
mod log;
mod registration;
mod roles;
mod rooms;
mod shell;
mod telling;
mod values;

use mlua::{Lua, MultiValue, Table, Value};

use invites_rules::register as reg;
use invites_rules::{cli, invite, ns};

use crate::adhoc::adhoc_exports;
use crate::convert::{codes_table, error_of, fail};
use crate::invites::new_invites;
use crate::lifecycle::{lifecycle_of, quota_check};
use crate::registration::{contact_token, new_registration};
use crate::roles::roles_exports;
use crate::rooms::rooms_exports;
use crate::shell::{parse_flag, parse_generate, parse_shell_args, shell_commands};
use crate::telling::{check_export, notify_exports, tree_exports};
use crate::values::{check_token, option_period, parse_period, redact};

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
    // parse_uses(text) -> n | nil, "bad-request", text
    exports.set(
        "parse_uses",
        lua.create_function(|lua, text: String| match cli::parse_uses(&text) {
            Ok(n) => Ok(MultiValue::from_iter([Value::Integer(i64::from(n))])),
            Err(e) => fail(lua, &e),
        })?,
    )?;
    // stanza_error(code, text?, host?) -> { type, condition, text }: the XMPP error for a failure
    // (`nil, code, text` of this library or of mod_invites' API) as the client sees it.
    exports.set(
        "stanza_error",
        lua.create_function(|lua, (code, text, host): (Value, Value, Option<String>)| {
            let error = error_of(&code, &text).stanza_error(host.as_deref().unwrap_or("this server"));
            let table = lua.create_table_with_capacity(0, 3)?;
            table.set("type", error.kind)?;
            table.set("condition", error.condition)?;
            table.set("text", error.text)?;
            Ok(table)
        })?,
    )?;
    // error_text(code, text?) -> the reason an error's code (and text) stands for, in words
    exports.set("error_text", lua.create_function(|_, (code, text): (Value, Value)| Ok(error_of(&code, &text).to_string()))?)?;
    exports.set("codes", codes_table(lua)?)?;
    exports.set("shell_commands", shell_commands(lua)?)?;
    exports.set("lifecycle", lua.create_function(lifecycle_of)?)?;
    exports.set("quota_check", lua.create_function(quota_check)?)?;
    exports.set("parse_shell_args", lua.create_function(parse_shell_args)?)?;
    exports.set("parse_generate", lua.create_function(parse_generate)?)?;
    exports.set("generate_usage", cli::GENERATE_USAGE)?;
    exports.set("default_ttl", invite::DEFAULT_TTL)?;
    exports.set("default_reset_ttl", invite::DEFAULT_RESET_TTL)?;
    let namespaces = lua.create_table()?;
    for (name, value) in ns::ALL {
        namespaces.set(*name, *value)?;
    }
    exports.set("ns", namespaces)?;
    // mod_invites_register
    exports.set("new_registration", lua.create_function(new_registration)?)?;
    // advertise_features(session_type, secure, require_encryption) -> whether the stream gets the
    // invite registration features
    exports.set(
        "advertise_features",
        lua.create_function(|_, (kind, secure, required): (String, bool, bool)| {
            Ok(reg::advertise_features(&kind, secure, required))
        })?,
    )?;
    // contact_token(presence_type?, token?, from_bare, to_bare) -> token | nil
    exports.set("contact_token", lua.create_function(contact_token)?)?;
    // registration_possible(invites_register_loaded, register_ibr_loaded, register_web_loaded)
    //   -> whether invitees can register on the host (a contact invite may promise ibr=y)
    exports.set(
        "registration_possible",
        lua.create_function(|_, (ours, ibr, web): (bool, bool, bool)| Ok(reg::registration_possible(ours, ibr, web)))?,
    )?;
    // mod_invites_adhoc
    exports.set("adhoc", adhoc_exports(lua)?)?;
    // Group chats carried by invites
    exports.set("rooms", rooms_exports(lua)?)?;
    exports.set("roles", roles_exports(lua)?)?;
    // mod_invites_web: qr_svg(text, title) -> inline <svg> markup | nil, code, text
    exports.set(
        "qr_svg",
        lua.create_function(|lua, (text, title): (String, String)| match invites_rules::qr::svg(&text, &title) {
            Ok(markup) => Ok(MultiValue::from_iter([Value::String(lua.create_string(markup)?)])),
            Err(error) => fail(lua, &error),
        })?,
    )?;
    // Telling people: the inviter's notification, who invited whom, the configuration check
    exports.set("notify", notify_exports(lua)?)?;
    exports.set("tree", tree_exports(lua)?)?;
    exports.set("check", check_export(lua)?)?;
    Ok(exports)
}
