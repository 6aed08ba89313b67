-- mod_invites_adhoc's glue with the real native library and the shared fake module API
-- (helpers/fake_prosody.lua): both releases' permission paths, and the shapes the handlers hand
-- to the adhoc library.
package.path = "/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;

local fake = require "helpers.fake_prosody";
local st = require "util.stanza";

local HOST = "example.com";
local ACCOUNT = "urn:xmpp:invite#create-account";
local CONTACT = "urn:xmpp:invite#invite";
local COMMANDS = "http://jabber.org/protocol/commands";
local DISCO_ITEMS = "http://jabber.org/protocol/disco#items";

-- Loads lua/mod_invites_adhoc.lua. opts:
--   config      module options
--   users       { ["jid"] = { admin = bool, roles = { role = true } } } (Prosody 0.12)
--   grants      { [":permission"] = { ["jid"] = true } }: present means Prosody 13
--   loaded      modules loaded on the host (default: invites_register, register_ibr)
--   existing    { username = true }
--   reserved    { username = token } as invites.reserved_by() answers; reserved = false: storage fails
--   fail        error code every invites.create_* returns
local function load_adhoc(opts)
	opts = opts or {};
	local config = opts.config or {};
	local users = opts.users or {};
	local prosody13 = opts.grants ~= nil;
	local it = { calls = {}, defaults = {}, handled = {}, sent = {} };

	local function bare(jid) return (jid:gsub("/.*$", "")); end

	local invites = {};
	local function created(kind, ...)
		it.calls[#it.calls + 1] = { kind, ... };
		if opts.fail then
			return nil, opts.fail;
		end
		return { uri = "xmpp:" .. HOST .. "?" .. kind .. ";preauth=T", expires = 1795320910, token = "T" };
	end
	function invites.create_contact(...) return created("create_contact", ...); end
	function invites.create_account(...) return created("create_account", ...); end
	function invites.create_account_reset(...) return created("create_account_reset", ...); end
	function invites.reserved_by(username)
		if opts.reserved == false then
			return nil, "internal-server-error";
		end
		return (opts.reserved or {})[username];
	end

	local usermanager = {
		is_admin = function (jid)
			assert(not prosody13, "is_admin used on Prosody 13");
			return users[bare(jid)] and users[bare(jid)].admin;
		end;
		get_roles = function (jid)
			assert(not prosody13, "get_roles used on Prosody 13");
			return users[bare(jid)] and users[bare(jid)].roles;
		end;
		user_exists = function (username) return (opts.existing or {})[username] == true; end;
		get_user_role = prosody13 and function () end or nil;
	};

	local adhoc_lib = {
		new = function (name, node, handler, permission)
			return { name = name, node = node, handler = handler, permission = permission };
		end;
		handle_cmd = function (command, origin, stanza)
			it.handled[#it.handled + 1] = { command = command, origin = origin, stanza = stanza };
			return true;
		end;
	};

	local may;
	if prosody13 then
		may = function (permission, context)
			local jid = type(context) == "string" and context or bare(context.stanza and context.stanza.attr.from or context.from);
			return (opts.grants[permission] or {})[jid] == true;
		end;
	end

	local saved = package.loaded["core.usermanager"];
	package.loaded["core.usermanager"] = usermanager;
	local prosody = { process_type = "prosody", version = prosody13 and "13.0.1" or "0.12.3", hosts = { [HOST] = {
		modules = opts.loaded or { invites_register = {}, register_ibr = {} };
		-- Prosody 13's authorization provider: default policies per role (true or false).
		authz = prosody13 and {
			add_default_permission = function (role, permission, policy)
				it.defaults[#it.defaults + 1] = ("%s %s %s"):format(role, permission, tostring(policy));
				return true;
			end;
		} or nil;
	} } };
	-- The username rule and the registration check are mod_invites' own, on the same host.
	local real_invites = fake.load_module("invites", { host = HOST; prosody = prosody });
	invites.prep_username, invites.registration_possible = real_invites.prep_username, real_invites.registration_possible;

	local ok, env_or_err, module = pcall(fake.load_module, "invites_adhoc", {
		host = HOST;
		config = config;
		depends = { invites = invites };
		requires = { adhoc = adhoc_lib };
		may = may;
		prosody = prosody;
	});
	package.loaded["core.usermanager"] = saved;
	assert(ok, env_or_err);
	it.provided, it.logs = module.provided, module.logs;
	-- Events reach the module's handlers in Prosody's order (by priority).
	function it.fire(event, data)
		return fake.fire_event(module, event, data);
	end

	function it.run(node, from, action, form)
		local command = it.provided[node];
		return command.handler(command, { from = from, to = HOST, action = action or "execute", form = form });
	end
	function it.event(from, node)
		local origin = { send = function (stanza) it.sent[#it.sent + 1] = stanza; end };
		return {
			origin = origin;
			node = node;
			stanza = st.iq({ type = "get", from = from, to = HOST, id = "x" })
				:tag("command", { xmlns = COMMANDS, node = node }):up();
			-- As mod_disco builds it: positioned inside the query.
			reply = st.reply(st.iq({ type = "get", from = from, to = HOST, id = "x" }))
				:query(node == COMMANDS and DISCO_ITEMS or "http://jabber.org/protocol/disco#info");
		};
	end
	return it;
end

local function submitted(values)
	local form = st.stanza("x", { xmlns = "jabber:x:data", type = "submit" });
	for var, value in pairs(values) do
		form:tag("field", { var = var }):text_tag("value", value):up();
	end
	return form;
end

local function field_values(result)
	local x = result.result.layout:form(nil, "result");
	local values = {};
	for field in x:childtags("field") do
		values[field.attr.var] = { type = field.attr.type, value = field:get_child_text("value") };
	end
	return values, x;
end

describe("mod_invites_adhoc", function ()
	describe("on Prosody 0.12", function ()
		it("registers the stock commands with mod_adhoc's permissions", function ()
			local m = load_adhoc();
			assert.equal("local_user", m.provided[CONTACT].permission);
			assert.equal("admin", m.provided[ACCOUNT].permission);
			assert.equal("admin", m.provided["urn:xmpp:invite#create-reset"].permission);
			m = load_adhoc({ config = { allow_contact_invites = false } });
			assert.equal("admin", m.provided[CONTACT].permission);
		end);

		it("promises ibr=y only to users who may invite, when registration works", function ()
			local users = {
				["admin@example.com"] = { admin = true },
				["dave@example.com"] = { roles = { trusted = true } },
				["gina@example.com"] = { roles = { { "untrusted" } } },
			};
			local cases = {
				-- requester, options, modules loaded, expected allow_registration
				{ "admin@example.com", {}, nil, true },
				{ "alice@example.com", {}, nil, false },
				{ "alice@example.com", { allow_user_invites = true }, nil, true },
				{ "dave@example.com", { allow_user_invites_by_roles = { "trusted" } }, nil, true },
				{ "gina@example.com", { allow_user_invites = true, deny_user_invites_by_roles = { "untrusted" } }, nil, true },
				{ "admin@example.com", {}, { register_ibr = {} }, false },
				{ "admin@example.com", {}, { invites_register = {} }, false },
				{ "admin@example.com", {}, { invites_register = {}, invites_register_web = {} }, true },
			};
			for i, case in ipairs(cases) do
				local m = load_adhoc({ users = users, config = case[2], loaded = case[3] });
				local result = m.run(CONTACT, case[1] .. "/res");
				assert.equal("completed", result.status, i);
				local call = m.calls[1];
				assert.same({ "create_contact", case[1]:match("^[^@]+"), case[4], { source = case[1] .. "/res" } }, call, i);
			end
		end);

		it("answers remote users and failures with command errors", function ()
			local m = load_adhoc({ users = { ["eve@elsewhere.org"] = { admin = true } } });
			local result = m.run(CONTACT, "eve@elsewhere.org/x");
			assert.equal("error", result.status);
			assert.same({ "auth", "forbidden" }, { result.error.type, result.error.condition });
			assert.equal("This command is only available to users of example.com", result.error.text);
			assert.equal(result.error.text, result.error.message);
			assert.same({}, m.calls);

			m = load_adhoc({ fail = "internal-server-error" });
			result = m.run(CONTACT, "alice@example.com/x");
			assert.same({ "wait", "internal-server-error" }, { result.error.type, result.error.condition });
			assert.equal("warn", m.logs[#m.logs].level);
		end);
	end);

	describe("on Prosody 13", function ()
		it("grants default permissions from the options and asks module:may", function ()
			local m = load_adhoc({
				config = { allow_user_invites = true, allow_user_invites_by_roles = { "trusted" },
					deny_user_invites_by_roles = { "guest" }, invites_account_roles = { "inviter" } };
				grants = { [":invite-users"] = {}, [":create-account"] = { ["carol@example.com"] = true } };
			});
			assert.same({
				"prosody:registered invites_adhoc:invite-users true", "prosody:admin invites_adhoc:create-account true",
				"prosody:admin invites_adhoc:manage true", "trusted invites_adhoc:invite-users true", "inviter invites_adhoc:create-account true",
				-- deny_user_invites_by_roles: an explicit "no" on the role, which wins over inheritance
				"guest invites_adhoc:invite-users false",
			}, m.defaults);
			-- The permission framework's answer wins over allow_user_invites.
			m.run(CONTACT, "alice@example.com/x");
			assert.is_false(m.calls[1][3]);
		end);

		it("promises ibr=y to holders of mod_invites_adhoc:invite-users", function ()
			local m = load_adhoc({ grants = { [":invite-users"] = { ["alice@example.com"] = true } } });
			assert.same({ "prosody:admin invites_adhoc:invite-users true", "prosody:admin invites_adhoc:create-account true",
				"prosody:admin invites_adhoc:manage true" }, m.defaults);
			m.run(CONTACT, "alice@example.com/x");
			assert.is_true(m.calls[1][3]);
		end);

		it("offers account invites to holders of mod_invites_adhoc:create-account", function ()
			local m = load_adhoc({ grants = { [":create-account"] = { ["carol@example.com"] = true } } });
			local event = m.event("carol@example.com/x", COMMANDS);
			m.fire("host-disco-items-node", event);
			assert.equal(ACCOUNT, event.reply:get_child("query", DISCO_ITEMS):get_child("item").attr.node);
			event = m.event("alice@example.com/x", COMMANDS);
			m.fire("host-disco-items-node", event);
			assert.is_nil(event.reply:get_child("query", DISCO_ITEMS):get_child("item"));
		end);
	end);

	describe("create-account", function ()
		local admin = { ["admin@example.com"] = { admin = true } };

		it("asks first, then creates what the form says", function ()
			local m = load_adhoc({ users = admin });
			local first = m.run(ACCOUNT, "admin@example.com/x");
			assert.equal("executing", first.status);
			assert.same({ "complete", default = "complete" }, first.actions);
			local x = first.form:form();
			assert.equal("form", x.attr.type);

			local result = m.run(ACCOUNT, "admin@example.com/x", "complete",
				submitted({ username = " Bob ", ["roster-subscription"] = "1" }));
			assert.equal("completed", result.status);
			assert.same({ "create_account", "bob", { source = "admin@example.com/x", roster_subscription = "admin@example.com" } },
				m.calls[1]);
			local values, form = field_values(result);
			assert.equal("result", form.attr.type);
			assert.same({ type = "hidden", value = "urn:xmpp:invite#invitation" }, values.FORM_TYPE);
			assert.equal("2026-11-22T04:15:10Z", values.expire.value);
			assert.is_nil(values["landing-url"]);
		end);

		it("makes an invite for any name when completed without a form", function ()
			local m = load_adhoc({ users = admin });
			assert.equal("completed", m.run(ACCOUNT, "admin@example.com/x", "complete").status);
			assert.same({ "create_account", nil, { source = "admin@example.com/x" } }, m.calls[1]);
			assert.equal("canceled", m.run(ACCOUNT, "admin@example.com/x", "cancel").status);
			local bad = m.run(ACCOUNT, "admin@example.com/x", "next");
			assert.equal("bad-action", bad.error.extra.condition);
		end);

		it("refuses names that are invalid, taken or reserved", function ()
			local m = load_adhoc({ users = admin, existing = { alice = true }, reserved = { zoe = "T1" } });
			local cases = {
				{ "a@b", "bad-request" }, { "alice", "conflict" }, { "zoe", "conflict" },
			};
			for _, case in ipairs(cases) do
				local result = m.run(ACCOUNT, "admin@example.com/x", "complete", submitted({ username = case[1] }));
				assert.equal("error", result.status, case[1]);
				assert.equal(case[2], result.error.condition, case[1]);
			end
			local result = m.run(ACCOUNT, "admin@example.com/x", "complete", submitted({ ["roster-subscription"] = "maybe" }));
			assert.equal("bad-request", result.error.condition);
			assert.matches("roster%-subscription", result.error.text);
			assert.same({}, m.calls);
		end);

		it("turns a failed reservation lookup into a command error and creates nothing", function ()
			local m = load_adhoc({ users = admin, reserved = false });
			local result = m.run(ACCOUNT, "admin@example.com/x", "complete", submitted({ username = "zoe" }));
			assert.equal("error", result.status);
			assert.equal("internal-server-error", result.error.condition);
			assert.same({}, m.calls);
		end);

		it("extends discovery and execution to role-granted users", function ()
			local m = load_adhoc({
				config = { invites_account_roles = { "inviter" } };
				users = { ["carol@example.com"] = { roles = { inviter = true } }, ["admin@example.com"] = { admin = true } };
			});
			local event = m.event("carol@example.com/x", ACCOUNT);
			assert.is_true(m.fire("host-disco-info-node", event));
			assert.equal(1, #m.sent);
			assert.is_true(m.fire("iq-set/host/" .. COMMANDS .. ":command", event));
			assert.equal(ACCOUNT, m.handled[1].command.node);

			event = m.event("alice@example.com/x", ACCOUNT);
			assert.is_nil(m.fire("host-disco-info-node", event));
			assert.is_nil(m.fire("iq-set/host/" .. COMMANDS .. ":command", event));
			assert.equal(1, #m.handled);

			-- mod_adhoc lists it for admins already: not twice.
			event = m.event("admin@example.com/x", COMMANDS);
			event.reply:tag("item", { node = ACCOUNT }):up();
			m.fire("host-disco-items-node", event);
			local count = 0;
			for _ in event.reply:get_child("query", DISCO_ITEMS):childtags("item") do count = count + 1; end
			assert.equal(1, count);
		end);
	end);

	it("resets passwords of existing local accounts only", function ()
		local m = load_adhoc({ users = { ["admin@example.com"] = { admin = true } }, existing = { carol = true } });
		local node = "urn:xmpp:invite#create-reset";
		local cases = {
			{ "carol@example.com", nil }, { "dan@example.com", "item-not-found" }, { "carol@elsewhere.org", "item-not-found" },
			{ "example.com", "bad-request" },
		};
		for _, case in ipairs(cases) do
			local result = m.run(node, "admin@example.com/x", "complete", submitted({ accountjid = case[1] }));
			if case[2] then
				assert.equal(case[2], result.error.condition, case[1]);
			else
				assert.equal("completed", result.status, case[1]);
			end
		end
		assert.same({ { "create_account_reset", "carol", { source = "admin@example.com/x" } } }, m.calls);
		assert.equal("bad-request", m.run(node, "admin@example.com/x", "complete").error.condition);
	end);
end);

describe("mod_invites get() and XEP-0401 roster-subscription", function ()
	it("reports the local creator of an account invite as its inviter, for registration to befriend", function ()
		local invites = fake.load_module("invites");
		local invite = assert(invites.create_account("bob", { source = "admin@example.com/x", roster_subscription = "admin@example.com" }));
		local valid = assert(invites.get(invite.token));
		assert.same({ "admin", "bob" }, { valid.inviter, valid.username });
		-- A creator elsewhere is no local contact; without the field nobody is befriended.
		for _, data in ipairs({ { roster_subscription = "eve@elsewhere.org" }, { source = "admin@example.com" }, {} }) do
			invite = assert(invites.create_account(nil, data));
			assert.is_nil(invites.get(invite.token).inviter);
		end
	end);
end);
