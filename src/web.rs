//! What mod_invites_web asks the core beyond tokens: the QR code of an invite link.

use mlua::{Lua, MultiValue, Value};

use crate::convert::fail;

/// `core.qr_svg(text, title)` -> inline `<svg>` markup | nil, code, text
pub(crate) fn qr_svg(lua: &Lua, (text, title): (String, String)) -> mlua::Result<MultiValue> {
    match invites_rules::qr::svg(&text, &title) {
        Ok(markup) => Ok(MultiValue::from_iter([Value::String(lua.create_string(markup)?)])),
        Err(error) => fail(lua, &error),
    }
}
