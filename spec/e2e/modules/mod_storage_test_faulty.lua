-- Test-only storage driver for the end-to-end tests: in-memory keyval stores that fail on demand,
-- so the tests can watch every invite operation meet a storage failure. Never for production.
--
--   storage = { invite_token = "test_faulty" }
--   test_faulty_writes = "all"    -- every write fails (default, unless faults are set below)
--                        "user"   -- writes under a user fail, host-level writes succeed
--                        "none"   -- nothing fails until a test asks for it
-- Map stores come from Prosody's map shim on top of these keyval stores (a map write reads first,
-- so a failing read fails map writes too).
--
-- On demand (mod_invites_testapi: set_fault / clear_faults / fault_hits), shared by every host:
--   faults[store][op] = { scope = "all" | "user" | "host", count = N?, skip = N? }
-- op is "get", "set" or "users"; the next `count` matching calls (all of them without count) fail,
-- after `skip` matching calls went through.
local mode = module:get_option_string("test_faulty_writes", "all");
local faults = module:shared("/*/storage_test_faulty/faults");
local hits = module:shared("/*/storage_test_faulty/hits");

local function copy(value)
	if type(value) ~= "table" then
		return value;
	end
	local out = {};
	for k, v in pairs(value) do
		out[k] = copy(v);
	end
	return out;
end

-- Whether this call of `op` on `store` (for `user`, nil at host level) is to fail.
local function failing(store, op, user)
	local rule = faults[store] and faults[store][op];
	if rule then
		local scope = rule.scope or "all";
		if scope == "all" or (scope == "user" and user ~= nil) or (scope == "host" and user == nil) then
			if (rule.skip or 0) > 0 then
				rule.skip = rule.skip - 1;
				return false;
			end
			if rule.count then
				if rule.count <= 0 then
					return false;
				end
				rule.count = rule.count - 1;
			end
			return true;
		end
		return false;
	end
	if op == "set" and next(faults) == nil then
		return mode == "all" or (mode == "user" and user ~= nil);
	end
	return false;
end

local function fail(store, op, user)
	hits[#hits + 1] = { store = store, op = op, user = user or false };
	-- The per-invite layout's users are tokens: a prefix only, as the modules log them.
	module:log("info", "Failing a %s of %s (user %s) as asked", op, store, tostring(user):sub(1, 6));
	return nil, "simulated storage failure";
end

local keyval = {};
keyval.__index = keyval;

function keyval:get(user)
	if failing(self.name, "get", user) then
		return fail(self.name, "get", user);
	end
	return copy(self.data[user or ""]);
end

function keyval:set(user, value)
	if failing(self.name, "set", user) then
		return fail(self.name, "set", user);
	end
	self.data[user or ""] = copy(value);
	return true;
end

function keyval:users()
	if failing(self.name, "users") then
		return fail(self.name, "users");
	end
	local users = {};
	for user in pairs(self.data) do
		if user ~= "" then
			users[#users + 1] = user;
		end
	end
	local i = 0;
	return function ()
		i = i + 1;
		return users[i];
	end;
end

local stores = {};
local driver = {};

function driver:open(store, kind) -- luacheck: ignore 212/self
	if kind ~= nil and kind ~= "keyval" then
		return nil, "unsupported-store";
	end
	stores[store] = stores[store] or setmetatable({ name = store; data = {} }, keyval);
	return stores[store];
end

function driver:purge() -- luacheck: ignore 212/self
	return true;
end

module:provides("storage", driver);
