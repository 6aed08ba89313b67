#!/bin/sh
# make test-package: installs target/deb/prosody-invites_VERSION_ARCH.deb with apt-get, checks
# what it installed, runs the registration and XEP-0379 end-to-end tests against private Prosody
# servers using /usr/lib/prosody-invites (INVITES_PLUGIN_DIR) on each host (0.12, and 13 when
# target/prosody13 is there), then removes the package again, whatever happened. Ends with the
# "total: N passed, N failed, N skipped" line of tools/run-tests.py.
#
# Installs into the system, so it needs root; otherwise it prints the command and fails.
# The system Prosody (/etc/prosody, /var/lib/prosody) is never used: the servers are the e2e
# harness's private ones.
set -eu
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
python=${PYTHON:-python3}

version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
deb="./target/deb/prosody-invites_${version}_$(dpkg --print-architecture).deb"
if [ "$(id -u)" -ne 0 ]; then
	echo "make test-package installs the package into the system. Run as root, or: sudo apt-get install -y $deb" >&2
	exit 1
fi
[ -f "$deb" ] || { echo "$deb is missing: run make deb" >&2; exit 1; }

hosts="--host 12"
if [ -x target/prosody13/root/usr/bin/prosodyctl ]; then
	hosts="$hosts --host 13"
fi

export DEBIAN_FRONTEND=noninteractive
remove() {
	echo "=== apt-get remove -y prosody-invites"
	apt-get remove -y -q prosody-invites >/dev/null || echo "apt-get remove -y prosody-invites failed" >&2
}
trap remove EXIT
trap 'exit 130' INT TERM
echo "=== apt-get install -y $deb"
apt-get install -y -q "$deb" >/dev/null
status=0
# shellcheck disable=SC2086
"$python" tools/run-tests.py --venv "$venv" --only package $hosts || status=$?
exit $status
