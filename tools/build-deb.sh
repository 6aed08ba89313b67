#!/bin/sh
# make deb: builds target/deb/prosody-invites_VERSION_ARCH.deb from target/plugins (built by
# `make plugins`) with dpkg-deb and the hand-written control file in packaging/deb/.
#
#   /usr/lib/prosody-invites/                 the plugin directory (mod_*.lua, invites_native.lib.lua,
#                                             invites_core.so), the same files as target/plugins
#   /usr/share/doc/prosody-invites/           README.md.gz, copyright, changelog.gz,
#                                             examples/prosody-invites.cfg.lua
#
# VERSION is Cargo.toml's; Depends is prosody (>= 0.12) plus what dpkg-shlibdeps finds for
# invites_core.so. No maintainer scripts and no conffiles: the package never touches /etc/prosody.
# DEB_MAINTAINER overrides the Maintainer field.
set -eu
cd "$(dirname "$0")/.."

plugins=target/plugins
out=target/deb
stage="$out/root"
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
maintainer=${DEB_MAINTAINER:-"prosody-invites maintainers <maintainers@users.noreply.h-seed-899e0bd8.example>"}
deb="$out/prosody-invites_${version}_${arch}.deb"

[ -n "$version" ] || { echo "no version in Cargo.toml" >&2; exit 1; }
for f in invites_core.so invites_native.lib.lua mod_invites.lua; do
	[ -f "$plugins/$f" ] || { echo "$plugins/$f is missing: run make plugins" >&2; exit 1; }
done

rm -rf "$stage"
lib="$stage/usr/lib/prosody-invites"
doc="$stage/usr/share/doc/prosody-invites"
install -d -m 0755 "$lib" "$doc/examples" "$stage/DEBIAN"
install -m 0644 "$plugins"/*.lua "$lib/"
# A shared object Prosody loads with package.loadlib: 0644, as Debian policy has for libraries.
install -m 0644 "$plugins/invites_core.so" "$lib/"

gzip -9n <README.md >"$doc/README.md.gz"
install -m 0644 packaging/deb/prosody-invites.cfg.lua "$doc/examples/"
crates=$(cargo tree --locked --offline -p invites-lua -e normal,no-proc-macro --prefix none --format "{p} {l}" \
	--no-default-features --features lua54 2>/dev/null | sed 's/ (\*)$//; s/ (\/[^)]*)//' | sort -u |
	grep -v '^invites-\(lua\|rules\) ' | sed 's/^/  /') || crates="  (cargo tree unavailable)"
awk -v crates="$crates" '{ if ($0 == "@CRATES@") print crates; else print }' packaging/deb/copyright.in \
	>"$doc/copyright"
chmod 0644 "$doc/copyright"
{
	echo "prosody-invites ($version) unstable; urgency=medium"
	echo
	echo "  * Built from the source tree $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)')."
	echo
	echo " -- $maintainer  $(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n >"$doc/changelog.gz"

# Shared-library dependencies of the native core, as dpkg-shlibdeps says (it wants a
# debian/control beside it; a minimal one in a scratch directory).
command -v dpkg-shlibdeps >/dev/null ||
	echo "warning: dpkg-shlibdeps (dpkg-dev) is not installed: Depends lists prosody only" >&2
shl="$out/shlibdeps"
rm -rf "$shl"
mkdir -p "$shl/debian"
printf 'Source: prosody-invites\n\nPackage: prosody-invites\nArchitecture: any\n' >"$shl/debian/control"
libdeps=$(cd "$shl" && dpkg-shlibdeps -O --warnings=0 -e "../../../$lib/invites_core.so" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p') || libdeps=""
rm -rf "$shl"
depends="prosody (>= 0.12)${libdeps:+, $libdeps}"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
	-e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" packaging/deb/control.in >"$stage/DEBIAN/control"
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"
find "$stage" -type d -exec chmod 0755 {} +

rm -f "$out"/prosody-invites_*.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb"
