-- Random Lua values thrown at every function the native binding exports (src/): each
-- call must return (its values, or nil, a code and a text) or raise a Lua error, never crash the Lua
-- state, never panic in Rust. Seeded, so a failure can be replayed.
local fake = require "helpers.fake_prosody";

local core = assert(package.loadlib(fake.plugin_dir .. "/invites_core.so", "luaopen_invites_core"))();

-- The userdata methods, read from the binding's source so that new ones are covered too.
local USERDATA_SOURCES = { "invites.rs", "registration.rs", "adhoc.rs" };
local function method_names()
	local names = {};
	for _, file in ipairs(USERDATA_SOURCES) do
		local f = assert(io.open("src/" .. file));
		local source = f:read("a");
		f:close();
		for name in source:gmatch('add_method[_mut]*%(%s*"([%w_]+)"') do
			names[#names + 1] = name;
		end
	end
	return names;
end

local SEED = tonumber(os.getenv("FUZZ_SEED") or "") or 20261130;
local ROUNDS = tonumber(os.getenv("FUZZ_ROUNDS") or "") or 300;

local function values(objects)
	local deep = {};
	local node = deep;
	for _ = 1, 200 do
		node.next = { "x", node };
		node = node.next;
	end
	local cyclic = {};
	cyclic.self, cyclic[1] = cyclic, cyclic;
	local hostile = setmetatable({}, {
		__index = function () error("hostile __index"); end;
		__newindex = function () error("hostile __newindex"); end;
		__len = function () error("hostile __len"); end;
		__pairs = function () error("hostile __pairs"); end;
	});
	local list = {
		nil, false, true, 0, 1, -1, 42, 2^53, -2^63, math.maxinteger, math.mininteger, 0/0, math.huge, -math.huge,
		1.5, -0.0, "", "x", "localhost", "alice@localhost", "Xo3gdOvANs77aUhUX40RFxTZ", "set", "subscribe",
		"register", "roster", "--role", "1 week", "never", "2026-11-30T00:00:00Z", "xmpp:a@b?roster;preauth=T",
		"\0", "\255\254\253", "caf\195", ("\192\128"):rep(10), ("a"):rep(300), ("x"):rep(1024 * 1024),
		{}, { 1, 2, 3 }, { "a", "b" }, { token = "T", type = "register", jid = "localhost", expires = 1 },
		{ type = "roster", jid = "alice@localhost", expires = "soon", additional_data = { roles = { 1, true } } },
		{ [true] = 1, [1.5] = 2, [{}] = 3 }, deep, cyclic, hostile, print, error, function () return nil, "x"; end,
		coroutine.create(function () end), io.stdout,
	};
	list.n = 51;
	for _, object in ipairs(objects) do
		list.n = list.n + 1;
		list[list.n] = object;
	end
	return list;
end

local function pick(list)
	return list[math.random(1, list.n)];
end

describe("the native binding under random input", function ()
	local invites = core.new("example.com", function () end);
	local registration = core.new_registration("example.com", function () end, {});
	local policy = core.adhoc.policy({});
	local objects = { invites, registration, policy };
	-- A callback that calls back into the binding (wherever a function is accepted).
	local reentrant = function (...) return invites:reservation_candidates("x"), ...; end;
	local pool = values({ invites, registration, policy, reentrant });

	local function check(name, ok, ...)
		if not ok then
			local err = tostring((...));
			assert.not_matches("[Pp]anic", err, name);
		elseif (...) == nil and select("#", ...) > 1 then
			-- A failure: nil, code[, text], nothing else.
			local _, code, text = ...;
			assert.is_true(select("#", ...) <= 3 and type(code) == "string" and (text == nil or type(text) == "string"), name);
		end
		return ok;
	end

	it("survives every exported function called with random arguments", function ()
		math.randomseed(SEED);
		local functions = {};
		for name, f in pairs(core) do
			if type(f) == "function" then functions[#functions + 1] = { "core." .. name, f }; end
		end
		for _, lib in ipairs({ "adhoc", "rooms" }) do
			for name, f in pairs(core[lib]) do
				if type(f) == "function" then functions[#functions + 1] = { "core." .. lib .. "." .. name, f }; end
			end
		end
		table.sort(functions, function (a, b) return a[1] < b[1]; end);
		assert.is_true(#functions >= 20, "every export found");
		local calls, errors = 0, 0;
		for _ = 1, ROUNDS do
			for _, entry in ipairs(functions) do
				local n = math.random(0, 6);
				local args = {};
				for i = 1, n do args[i] = pick(pool); end
				calls = calls + 1;
				if not check(entry[1], pcall(entry[2], table.unpack(args, 1, n))) then errors = errors + 1; end
			end
		end
		assert.is_true(calls > 0 and errors > 0 and errors < calls, ("%d calls, %d errors"):format(calls, errors));
	end);

	it("survives every method called on every object, with random arguments and random selves", function ()
		math.randomseed(SEED + 1);
		local names = method_names();
		assert.is_true(#names >= 20, "methods found in src/");
		local found = 0;
		for _ = 1, ROUNDS do
			for _, name in ipairs(names) do
				for _, object in ipairs(objects) do
					local ok, method = pcall(function () return object[name]; end);
					if ok and type(method) == "function" then
						found = found + 1;
						local n = math.random(0, 6);
						local args = {};
						for i = 1, n do args[i] = pick(pool); end
						local self = math.random() < 0.8 and object or pick(pool);
						check(name, pcall(method, self, table.unpack(args, 1, n)));
					end
				end
			end
		end
		assert.is_true(found >= #names * ROUNDS, "each method belongs to some object");
	end);

	it("leaves the Lua state and the objects working", function ()
		assert.is_true(core.check_token("Xo3gdOvANs77aUhUX40RFxTZ"));
		assert.same({ nil, "token-invalid", "the invite token is invalid" }, { core.check_token(("x"):rep(1024 * 1024)) });
		local record = assert(invites:create("register", nil, true, 60, nil, nil, 100));
		assert.equal("example.com", record.jid);
		assert.equal(7 * 86400, core.parse_period("1 week"));
		assert.same({ nil, "token-invalid", "the invite token is invalid" }, { registration:preauth("192.0.2.1", "set", "junk!", 0) });
		collectgarbage();
	end);
end);

describe("the binding's failures", function ()
	local HOST = "example.com";

	it("are nil, code, text, and the code gives the client's error", function ()
		local registration = core.new_registration(HOST, function () end, { max_failures = 1 });
		local ok, code, reason = registration:preauth("192.0.2.1", "get", "Xo3gdOvANs77aUhUX40RFxTZ", 0);
		assert.same({ nil, "preauth-not-set", "not an iq of type set" }, { ok, code, reason });
		assert.same({ type = "modify"; condition = "bad-request"; text = "The pre-auth request must be of type 'set'" },
			core.stanza_error(code, reason, HOST));
		assert.same({ nil, "token-invalid", "the invite token is invalid" },
			{ registration:preauth_failed("192.0.2.1", "token-expired", 0) });
		code = select(2, registration:preauth("192.0.2.1", "set", "Xo3gdOvANs77aUhUX40RFxTZ", 1));
		assert.equal("throttled", code);
		assert.equal("policy-violation", core.stanza_error(code).condition);
		assert.same({ nil, "internal-server-error", "internal server error" }, { registration:preauth_failed("192.0.2.2", nil, 0) });
	end);

	it("show the text that comes with codes that carry one", function ()
		local _, code, text = core.parse_uses("many");
		assert.equal("bad-request", code);
		assert.equal(text, core.stanza_error(code, text, HOST).text);
		assert.equal("The submitted form could not be used", core.stanza_error("bad-request", nil, HOST).text);
		assert.equal("Group chat a@b: gone", core.stanza_error("item-not-found", "Group chat a@b: gone", HOST).text);
		-- Codes without a text of their own keep theirs; the host is named where it matters.
		assert.equal("There is no such account on example.com", core.stanza_error("unknown-account", "ignored", HOST).text);
		assert.same({ type = "wait"; condition = "internal-server-error";
			text = "The server could not do this now, please try again later" }, core.stanza_error("no-such-code", nil, HOST));
	end);

	it("fail closed: a fact the shim must give and does not refuses, naming it", function ()
		local registration = core.new_registration(HOST, function () end, {});
		local request = { username = "bob"; invite_only = false; account_exists = false; reserved_by = nil };
		assert.is_true(registration:registering(request, 1, 0));
		request.invite_only = nil; -- say, misspelt: never open registration
		assert.same({ nil, "internal-server-error", "missing or bad field 'invite_only'" },
			{ registration:registering(request, 1, 0) });
		request.invite_only = true;
		request.invite = { token = "Xo3gdOvANs77aUhUX40RFxTZ"; reusable = false };
		request.standing = { record = {}; audit = false };
		assert.same({ nil, "internal-server-error", "missing or bad field 'type'" }, { registration:registering(request, 1, 0) });
		request.invite.type = "register";
		request.standing.audit = { uses = "three" };
		assert.same({ nil, "internal-server-error", "missing or bad field 'uses'" }, { registration:registering(request, 1, 0) });
		local validated = { token = "Xo3gdOvANs77aUhUX40RFxTZ"; type = "register"; jid = HOST; uri = "xmpp:" .. HOST;
			expires = 10; reusable = false; allow_registration = true };
		assert.same({ nil, "internal-server-error", "missing or bad field 'username'" },
			{ registration:registered(validated, 1, { inviter_exists = false; standing = { record = {}; audit = false } }) });
		assert.same({ nil, "internal-server-error", "missing or bad field 'invite'" },
			{ registration:registered({ token = 1 }, 1, { username = "bob"; inviter_exists = false;
				standing = { record = {}; audit = false } }) });
		assert.same({ nil, "internal-server-error", "missing or bad field 'expires'" },
			{ core.lifecycle({ stored = true; uses = 0 }, 0, 0) });
		assert.equal("pending", core.lifecycle({ stored = true; uses = 0; expires = 10 }, 0, 0).state);
	end);

	it("names every error code in core.codes, and raises for a name that is none", function ()
		assert.equal("token-invalid", core.codes.token_invalid);
		assert.equal("not-pending", core.codes.not_pending);
		assert.equal("internal-server-error", core.codes.internal_server_error);
		local ok, err = pcall(function () return core.codes.token_invlaid; end);
		assert.is_false(ok);
		assert.matches("no such error code: token_invlaid", err, 1, true);
		-- Every name is its code with "_" for "-".
		for name, code in pairs(core.codes) do
			assert.equal(name, (code:gsub("-", "_")));
		end
	end);

	it("tell a refused room's outcome by its code", function ()
		assert.equal("room-gone", core.rooms.refused_outcome("item-not-found"));
		assert.equal("not-allowed", core.rooms.refused_outcome("not-allowed"));
		assert.equal("unsuitable", core.rooms.refused_outcome("bad-request"));
	end);
end);
