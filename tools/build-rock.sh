#!/bin/sh
# make rock: builds the rockspec with Debian's luarocks into a private tree, offline, and packs the
# installed rock as a binary rock:
#
#   target/rocks-tree/share/lua/5.4/   the plugin directory (mod_*.lua, invites_native.lib.lua,
#                                      invites_core.so): plugin_paths = { ".../share/lua/5.4" }
#   target/rocks-tree/lib/luarocks/rocks-5.4/prosody-invites/VERSION-1/invites_core.so
#                                      the library for a `prosodyctl install` tree (Prosody's
#                                      module:get_directory() is the rock's directory there)
#   target/rocks-tree/lib/lua/5.4/     invites_core.so again (require "invites_core"; it also
#                                      makes the binary rock architecture-specific)
#   target/rocks/prosody-invites-VERSION-1.ARCH.rock, and a manifest: a local rocks directory
#                                      (`prosodyctl install target/rocks/....rock`)
#
# Offline: `luarocks make` builds from this checkout (cargo uses its cache), and --only-server
# points at the still empty local rocks directory, so a missing dependency fails instead of
# being fetched. ROCK_LUA_VERSION (default 5.4) picks the Lua (Debian needs liblua5.4-dev).
set -eu
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
lua_version=${ROCK_LUA_VERSION:-5.4}
rockspec="prosody-invites-$version-1.rockspec"
[ -f "$rockspec" ] || { echo "$rockspec is missing (Cargo.toml's version is $version)" >&2; exit 1; }

rm -rf target/rocks-tree target/rocks
mkdir -p target/rocks
rocks="$PWD/target/rocks"
luarocks --lua-version="$lua_version" make --only-server="$rocks" --tree target/rocks-tree "$rockspec"
(cd target/rocks && luarocks --lua-version="$lua_version" pack prosody-invites "$version-1" --tree ../rocks-tree)
luarocks-admin --lua-version="$lua_version" make_manifest target/rocks >/dev/null
