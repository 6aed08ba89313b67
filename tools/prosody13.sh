#!/bin/sh
# Unpacks Prosody 13.0.1 and its prosody-modules snapshot from Debian bookworm-backports into a
# private prefix, target/prosody13/root, beside the system's Prosody 0.12.3 (nothing is installed
# with dpkg, and nothing system-wide changes: apt runs with a private configuration under
# target/prosody13/apt).
#
# As root: reads bookworm-backports into that configuration, downloads the two .debs into
# target/prosody13/debs, extracts them
# and points the launchers root/usr/bin/prosody and prosodyctl at the prefix. Otherwise it prints
# the one command to run. The stamp target/prosody13/stamp records the versions; with it present
# and current this does nothing. Its Lua libraries beyond 0.12's (lua-bitop, lua-unbound) come
# from Debian's bookworm through tools/debian-deps.sh (make deps).
set -eu
PROSODY_VERSION="13.0.1-1~bpo12+1"
MODULES_VERSION="0.0~hg20250402.f315edc39f3d+dfsg-1~bpo12+1"
OLD_SOURCES=/etc/apt/sources.list.d/prosody-invites-backports.sources

cd "$(dirname "$0")/.."
prefix="$PWD/target/prosody13"
root="$prefix/root"
stamp="$prefix/stamp"
want="prosody=$PROSODY_VERSION prosody-modules=$MODULES_VERSION"

# Earlier versions of this script added this file to the system's apt sources: take it back.
if [ -f "$OLD_SOURCES" ] && [ "$(id -u)" -eq 0 ]; then
	rm -f "$OLD_SOURCES"
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$root/usr/bin/prosodyctl" ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "Prosody 13 is not unpacked in $root. Run: sudo sh tools/prosody13.sh" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# A private apt configuration under target/: our bookworm-backports source and its package lists
# live there, so nothing under /etc/apt changes and the machine's own sources (backports or not)
# do not matter.
apt_dir="$prefix/apt"
mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
apt_private() {
	apt-get -q \
		-o Dir::Etc::SourceList=/dev/null \
		-o Dir::Etc::SourceParts="$apt_dir/sources.list.d" \
		-o Dir::State::Lists="$apt_dir/lists" \
		-o Dir::Cache="$apt_dir/cache" \
		-o APT::Sandbox::User=root \
		"$@"
}

# The machine's bookworm mirror and key, read from its deb822 sources (Debian's defaults otherwise).
uris=""
signed_by=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
	# shellcheck disable=SC2016
	found=$(awk '
		function flush() {
			if (!done && suites ~ /(^| )bookworm( |$)/ && types ~ /(^| )deb( |$)/) {
				print uris "\t" signed; done = 1
			}
			types = ""; uris = ""; suites = ""; signed = ""
		}
		/^[ \t]*$/ { flush(); next }
		/^#/ { next }
		{
			key = $1; sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
			if (key == "Types") types = val
			else if (key == "URIs") uris = val
			else if (key == "Suites") suites = val
			else if (key == "Signed-By") signed = val
		}
		END { flush() }
	' /etc/apt/sources.list.d/debian.sources)
	uris=$(printf '%s' "$found" | cut -f1)
	signed_by=$(printf '%s' "$found" | cut -f2)
fi
[ -n "$uris" ] || uris="http://deb.debian.org/debian"
[ -n "$signed_by" ] || signed_by="/usr/share/keyrings/debian-archive-keyring.gpg"
cat >"$apt_dir/sources.list.d/backports.sources" <<EOF
Types: deb
URIs: $uris
Suites: bookworm-backports
Components: main
Signed-By: $signed_by
EOF
if ! apt_private update >"$prefix/update.log" 2>&1; then
	cat "$prefix/update.log" >&2
	exit 1
fi

echo "Unpacking Prosody $PROSODY_VERSION and prosody-modules $MODULES_VERSION into $root"
debs="$prefix/debs"
mkdir -p "$debs"
if ! (cd "$debs" && apt_private download "prosody=$PROSODY_VERSION" "prosody-modules=$MODULES_VERSION") \
	>"$prefix/download.log" 2>&1; then
	cat "$prefix/download.log" >&2
	exit 1
fi
rm -rf "$root" "$stamp"
mkdir -p "$root"
for deb in "$debs/prosody_${PROSODY_VERSION}_"*.deb "$debs/prosody-modules_${MODULES_VERSION}_"*.deb; do
	dpkg-deb -x "$deb" "$root"
done

# The launchers find Prosody's Lua code and modules through these two lines.
for bin in prosody prosodyctl; do
	sed -i \
		-e "s|^CFG_SOURCEDIR=.*|CFG_SOURCEDIR='$root/usr/lib/prosody';|" \
		-e "s|^CFG_PLUGINDIR=.*|CFG_PLUGINDIR='$root/usr/lib/prosody/modules/';|" \
		"$root/usr/bin/$bin"
	grep -q "^CFG_SOURCEDIR='$root/" "$root/usr/bin/$bin" || {
		echo "$root/usr/bin/$bin: no CFG_SOURCEDIR line to rewrite" >&2
		exit 1
	}
done
echo "$want" >"$stamp"
