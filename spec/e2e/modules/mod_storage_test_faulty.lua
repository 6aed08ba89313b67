-- Test-only storage driver for the end-to-end tests: in-memory keyval stores whose writes fail
-- on demand, so the tests can watch invite creation meet a storage failure. Never for production.
--
--   storage = { invite_token = "test_faulty" }
--   test_faulty_writes = "all"    -- every write fails (default)
--                        "user"   -- writes under a user fail, host-level writes succeed
-- Map stores come from Prosody's map shim on top of these keyval stores.
local mode = module:get_option_string("test_faulty_writes", "all");

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

local keyval = {};
keyval.__index = keyval;

function keyval:get(user)
	return copy(self.data[user or ""]);
end

function keyval:set(user, value)
	if mode == "all" or (mode == "user" and user ~= nil) then
		module:log("info", "Failing a write to %s as configured (test_faulty_writes = %s)", self.name, mode);
		return nil, "simulated storage failure";
	end
	self.data[user or ""] = copy(value);
	return true;
end

function keyval:users()
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
