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

LUA_FEATURE = $(if $(filter jit,$(LUA_VERSION)),luajit,lua$(LUA_VERSION))
CARGO_FLAGS = --release --locked --no-default-features --features $(LUA_FEATURE)
PLUGINS = target/plugins
NATIVE = target/release/libinvites_core.so
SHIMS = $(wildcard lua/*.lua)
VENV = .venv
DEBIAN_PACKAGES = prosody prosody-modules lua5.4 lua-busted lua-check lua-dbi-sqlite3 python3-venv chromium libjs-bootstrap4 libjs-jquery

.PHONY: all plugins install deps venv test test-stock test-e2e lint run bench clean

all: plugins

plugins: $(PLUGINS)/invites_core.so $(SHIMS:lua/%=$(PLUGINS)/%)

$(NATIVE): Cargo.toml Cargo.lock $(wildcard src/*.rs)
	$(CARGO) build $(CARGO_FLAGS)

$(PLUGINS)/invites_core.so: $(NATIVE)
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

$(VENV)/.installed: requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

# Every tier (format, lint, Rust unit tests, busted specs, end-to-end against a real Prosody),
# ending with one "N passed, N failed" line over all of them.
test: deps venv plugins
	$(PYTHON) tools/run-tests.py --venv $(VENV)

# The end-to-end suite against Debian's stock modules, to show which deliberate fixes they lack.
test-stock: deps venv plugins
	INVITES_IMPL=stock $(PYTHON) tools/run-tests.py --venv $(VENV) --only e2e

test-e2e: deps venv plugins
	$(PYTHON) tools/run-tests.py --venv $(VENV) --only e2e

lint: deps
	$(PYTHON) tools/run-tests.py --only lint

# Our modules against Debian's stock ones on the same Prosody, interleaved rounds (up to ten
# minutes; not part of `make test`). One line per figure; full results in target/bench.json.
# BENCH_FLAGS=--quick for a fast check of the bench itself.
bench: deps venv plugins
	$(PYTHON) bench/run.py $(BENCH_FLAGS)

# A local Prosody on loopback with our modules, printing a working invite. Ctrl-C stops it.
run: deps plugins
	$(PYTHON) tools/run-local.py

clean:
	$(CARGO) clean
	rm -rf $(VENV) run
