# Front door for builds and tests. Cargo stays the source of truth for the Rust side; this file
# assembles the plugin directory Prosody loads and runs the test tiers.

CARGO ?= cargo
BUSTED ?= busted
LUACHECK ?= luacheck
LUA ?= lua5.4
PYTHON ?= python3
# Lua version of the host Prosody: 54 (Debian's 0.12/13), 53, 52, 51 or jit.
LUA_VERSION ?= 54
PREFIX ?= /usr/local
DESTDIR ?=

# Or the Lua interpreter to build for (the rockspec passes luarocks' $(LUA)): its version wins.
LUA_INTERPRETER ?=
ifneq ($(LUA_INTERPRETER),)
override LUA_VERSION := $(shell $(LUA_INTERPRETER) -e 'io.write(jit and "jit" or (_VERSION:gsub("%D", "")))')
endif
# 5.4 means 54.
LUA_FEATURE = $(if $(filter jit,$(LUA_VERSION)),luajit,lua$(subst .,,$(LUA_VERSION)))
# One build directory per Lua version, so `make LUA_VERSION=53` after `make` really builds for 5.3.
CARGO_FLAGS = --release --locked --no-default-features --features $(LUA_FEATURE) --target-dir target/$(LUA_FEATURE)
PLUGINS = target/plugins
NATIVE = target/$(LUA_FEATURE)/release/libinvites_core.so
# Which Lua the plugin directory's library is for: a switch copies the other build in.
LUA_STAMP = target/plugins-$(LUA_FEATURE).stamp
SHIMS = $(wildcard lua/*.lua)
VENV = .venv
# lua-bitop and lua-unbound: what Prosody 13 needs beyond 0.12's dependencies (bookworm packages);
# postgresql and lua-dbi-postgresql for the PostgreSQL tiers; luarocks and liblua5.4-dev (luarocks
# insists on Lua's headers) for the rock; chromium-driver (Selenium) and zbar-tools (QR decoding)
# for the browser tiers.
DEBIAN_PACKAGES = prosody prosody-modules lua5.4 lua-busted lua-check lua-dbi-sqlite3 lua-dbi-postgresql postgresql luarocks liblua5.4-dev python3-venv chromium chromium-driver zbar-tools libjs-bootstrap4 libjs-jquery lua-bitop lua-unbound
# Prosody 13 in a private prefix (tools/prosody13.sh); the stamp records its versions.
PROSODY13 = target/prosody13/stamp
# Which Prosody to use: HOST=12 (Debian's 0.12) or HOST=13 (target/prosody13); PROSODY=… is the
# same. `make test-e2e`/`make test-stock` run both hosts without it, `make run`/`make bench` 0.12.
HOST ?=
PROSODY ?=
ON = $(or $(HOST),$(PROSODY))
# Prosody 13 is a prerequisite unless only 0.12 is asked for.
NEEDS13 = $(if $(filter 12 0.12,$(ON)),,$(PROSODY13))
ON13 = $(if $(filter 13,$(ON)),$(PROSODY13))

.PHONY: all plugins install deps prosody13 venv axe test test-stock test-e2e test-unit lint run bench clean deb test-package rock

all: plugins

plugins: $(PLUGINS)/invites_core.so $(SHIMS:lua/%=$(PLUGINS)/%)

$(NATIVE): Cargo.toml Cargo.lock $(wildcard src/*.rs crates/*/Cargo.toml crates/*/src/*.rs)
	$(CARGO) build -p invites-lua $(CARGO_FLAGS)

$(LUA_STAMP):
	@mkdir -p target
	@rm -f target/plugins-*.stamp
	@touch $@

$(PLUGINS)/invites_core.so: $(NATIVE) $(LUA_STAMP)
	@mkdir -p $(PLUGINS)
	cp $< $@

$(PLUGINS)/%.lua: lua/%.lua
	@mkdir -p $(PLUGINS)
	cp $< $@

install: plugins
	install -d $(DESTDIR)$(PREFIX)/lib/prosody-invites
	install -m 0644 $(PLUGINS)/*.lua $(DESTDIR)$(PREFIX)/lib/prosody-invites/
	install -m 0755 $(PLUGINS)/invites_core.so $(DESTDIR)$(PREFIX)/lib/prosody-invites/

# Debian packages the tests and `make run` need; installed when missing (as root).
deps:
	@sh tools/debian-deps.sh $(DEBIAN_PACKAGES)

# Prosody 13.0.1 beside the system's 0.12 (bookworm-backports .debs unpacked under target/).
$(PROSODY13): tools/prosody13.sh | deps
	@sh tools/prosody13.sh
	@touch $@

prosody13: $(PROSODY13)

$(VENV)/.installed: requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

# axe-core (npm) for the browser tiers' accessibility check, into target/npm (npm itself from
# Debian's `npm` when there is no npm yet).
AXE_VERSION = 4.14.1
AXE = target/npm/node_modules/axe-core/axe.min.js
$(AXE):
	@command -v npm >/dev/null || sh tools/debian-deps.sh npm
	npm install --prefix target/npm --no-audit --no-fund --silent axe-core@$(AXE_VERSION)

axe: $(AXE)

# Every tier (format, lint, Rust unit tests, busted specs, the rockspec built with luarocks and
# installed with prosodyctl, end-to-end against a real Prosody, and the PostgreSQL subset: one
# tier per host each, 0.12 and 13, or HOST's only), ending with one "N passed, N failed, N skipped"
# line over all of them.
test: deps venv plugins $(AXE) $(NEEDS13)
	$(PYTHON) tools/run-tests.py --venv $(VENV) $(if $(ON),--host $(ON))

# The end-to-end suite against Prosody's stock modules, to show which deliberate fixes they lack.
test-stock: deps venv plugins $(NEEDS13)
	INVITES_IMPL=stock $(PYTHON) tools/run-tests.py --venv $(VENV) --only e2e $(if $(ON),--host $(ON))

# The end-to-end suite alone; HOST=12 or HOST=13 for one Prosody.
test-e2e: deps venv plugins $(NEEDS13)
	$(PYTHON) tools/run-tests.py --venv $(VENV) --only e2e $(if $(ON),--host $(ON))

# The Debian package target/deb/prosody-invites_VERSION_ARCH.deb (tools/build-deb.sh, dpkg-deb):
# the plugin directory in /usr/lib/prosody-invites, docs and an example configuration in
# /usr/share/doc/prosody-invites; nothing touches /etc/prosody.
deb: plugins
	@sh tools/build-deb.sh

# The rockspec built with luarocks into target/rocks-tree (offline) and packed as a binary rock in
# target/rocks (tools/build-rock.sh); `make test` does this in its luarocks tier.
rock: deps plugins
	@sh tools/build-rock.sh

# Installs that package (apt-get, as root), runs the registration and XEP-0379 end-to-end tests
# against it on both hosts (13 when unpacked), removes it again; not part of `make test`.
test-package: deps venv deb
	@sh tools/test-package.sh

# Format, lint and the unit tiers need no Prosody, browser or root: only these packages, which
# they install as root or name otherwise.
LINT_PACKAGES = lua-check
UNIT_PACKAGES = lua5.4 lua-busted

lint:
	@sh tools/debian-deps.sh $(LINT_PACKAGES)
	$(PYTHON) tools/run-tests.py --only lint

# cargo test and the busted specs (which load the built library).
test-unit: plugins
	@sh tools/debian-deps.sh $(UNIT_PACKAGES)
	$(PYTHON) tools/run-tests.py --only unit

# Our modules (default layout and invites_storage_layout = "stock") against Debian's stock ones on
# the same Prosody, interleaved rounds, N = 0 to 100 000 live invites (at most ten minutes; not part
# of `make test`). Prints the tables and the targets (PASS/MISS); full results in target/bench.json,
# the chart in docs/bench.png (matplotlib from the venv). BENCH_FLAGS=--quick for a fast smoke run of
# the bench itself; BENCH_FLAGS=--disk puts the servers' data on disk instead of /dev/shm.
# PROSODY=13 benches on Prosody 13. First, bench/binding.lua: ns per binding call, no Prosody.
bench: deps venv plugins $(ON13)
	$(LUA) bench/binding.lua
	$(VENV)/bin/python bench/run.py $(if $(ON),--prosody $(ON)) $(BENCH_FLAGS)

# A local Prosody on loopback with our modules, printing a working invite. Ctrl-C stops it.
# PROSODY=13 runs it on Prosody 13.
run: deps plugins $(ON13)
	$(PYTHON) tools/run-local.py $(if $(ON),--prosody $(ON))

clean:
	$(CARGO) clean
	rm -rf $(VENV) run
