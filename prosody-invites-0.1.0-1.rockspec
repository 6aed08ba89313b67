-- LuaRocks build of the plugin directory (the same files `make` puts in target/plugins), from this
-- source tree: `luarocks --lua-version=5.4 make --tree TREE prosody-invites-0.1.0-1.rockspec`
-- (Debian: luarocks and liblua5.4-dev). Cargo builds invites_core.so (a Rust toolchain and the
-- crates in ~/.cargo; no network when they are cached). Where the files land:
--   TREE/share/lua/5.4/  the plugin directory (mod_*.lua, invites_native.lib.lua, invites_core.so):
--                        what plugin_paths names, and where Prosody's loader finds the modules in
--                        a `prosodyctl install` tree
--   TREE/lib/luarocks/rocks-5.4/prosody-invites/VERSION/invites_core.so: the library again, for
--                        modules loaded from a `prosodyctl install` tree, whose module:get_directory()
--                        Prosody points at the rock's own directory
--   TREE/lib/lua/5.4/invites_core.so: once more (require "invites_core"; makes the rock arch-specific)
-- The version is Cargo.toml's (a test checks that they agree).
rockspec_format = "3.0"
package = "prosody-invites"
version = "0.1.0-1"
source = {
	-- Built from a checkout with `luarocks make`; not published on a rocks server.
	url = ".",
}
description = {
	summary = "Drop-in replacement for Prosody's invite modules (Rust core, thin Lua modules)",
	detailed = [[
mod_invites, mod_invites_register and mod_invites_adhoc for the Prosody XMPP server, with the
rules in a native library (Rust, mlua) and thin Lua modules around it: same module names, options
and storage as Prosody's own modules. Put the installed directory first in plugin_paths (or
install with `prosodyctl install`, which adds its tree to the plugin path by itself).]],
	license = "MIT",
	labels = { "prosody", "xmpp", "invites" },
}
dependencies = {
	"lua >= 5.1, < 5.5",
}
build = {
	type = "command",
	-- $(LUA) is luarocks' interpreter: the native library is built for its Lua version.
	build_command = "make plugins LUA_INTERPRETER='$(LUA)'",
	install_command = "mkdir -p '$(LUADIR)' '$(LIBDIR)' && cp target/plugins/*.lua target/plugins/invites_core.so '$(LUADIR)/' && cp target/plugins/invites_core.so '$(PREFIX)/' && cp target/plugins/invites_core.so '$(LIBDIR)/'",
}
