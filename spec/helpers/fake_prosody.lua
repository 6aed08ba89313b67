-- A minimal fake of Prosody's module API, enough to run our shims under busted with the real
-- native library. Storage is an in-memory map that also answers the keyval view, and counts
-- reads so specs can check that junk input never reaches storage; fail_reads and fail_writes
-- make it fail as a broken database would.
package.path = "/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;

local fake = {};

-- core.usermanager unless a spec installs its own: every account exists but those in
-- fake.deleted_accounts (as prosodyctl deluser would leave them).
fake.deleted_accounts = {};
fake.usermanager = {
	user_exists = function (username) return fake.deleted_accounts[username] == nil; end;
};
package.loaded["core.usermanager"] = package.loaded["core.usermanager"] or fake.usermanager;

fake.plugin_dir = os.getenv("INVITES_PLUGIN_DIR") or "target/plugins";

function fake.new_storage()
	local storage = { data = {}, reads = 0, writes = 0, fail_reads = false, fail_writes = false };
	local remove = {};

	local function bucket(user, create)
		local key = user or "";
		if create and not storage.data[key] then
			storage.data[key] = {};
		end
		return storage.data[key];
	end

	local map = { remove = remove };
	function map:get(user, key) -- luacheck: ignore 212/self
		storage.reads = storage.reads + 1;
		if storage.fail_reads then
			return nil, "simulated storage failure";
		end
		local b = bucket(user);
		return b and b[key];
	end
	function map:set_keys(user, keydatas) -- luacheck: ignore 212/self
		if storage.fail_writes then
			return nil, "simulated storage failure";
		end
		storage.writes = storage.writes + 1;
		local b = bucket(user, true);
		for k, v in pairs(keydatas) do
			if v == remove then v = nil; end
			b[k] = v;
		end
		if next(b) == nil then
			storage.data[user or ""] = nil;
		end
		return true;
	end
	function map:set(user, key, value)
		return self:set_keys(user, { [key] = value == nil and remove or value });
	end

	local keyval = {};
	function keyval:get(user) -- luacheck: ignore 212/self
		storage.reads = storage.reads + 1;
		if storage.fail_reads then
			return nil, "simulated storage failure";
		end
		local b = bucket(user);
		if not b then return nil; end
		local copy = {};
		for k, v in pairs(b) do copy[k] = v; end
		return copy;
	end
	function keyval:set(user, data) -- luacheck: ignore 212/self
		if storage.fail_writes then
			return nil, "simulated storage failure";
		end
		storage.writes = storage.writes + 1;
		storage.data[user or ""] = data;
		return true;
	end
	function keyval:users() -- luacheck: ignore 212/self
		local users = {};
		for user in pairs(storage.data) do
			if user ~= "" then users[#users + 1] = user; end
		end
		local i = 0;
		return function ()
			i = i + 1;
			return users[i];
		end;
	end

	storage.map, storage.keyval = map, keyval;
	return storage;
end

-- Loads lua/<name>.lua as Prosody would, with a fake `module`. Returns the module environment
-- (what module:depends() hands to consumers) and the fake for inspection.
function fake.load_module(name, options)
	options = options or {};
	local storage = options.storage or fake.new_storage();
	local events, fired, logs, timers = {}, {}, {}, {};
	local shared = options.shared or {};
	local module = {
		name = name;
		host = options.host or "example.com";
		storage = storage;
		fired = fired;
		logs = logs;
		timers = timers;
		events = events;
	};
	local config = options.config or {};
	-- The specs of mod_invites' stored data were written against the stock layout; the per-invite
	-- layout has its own (invites_storage_spec.lua), which asks for it.
	if config.invites_storage_layout == nil then
		config.invites_storage_layout = "stock";
	end
	local env = setmetatable({ module = module, prosody = options.prosody or { process_type = "prosody", version = "0.12.3" } }, { __index = _G });

	function module:get_directory() return fake.plugin_dir; end -- luacheck: ignore 212/self
	-- options.requires = { name = table } stands in for Prosody's own libraries (e.g. "adhoc").
	function module:require(lib)
		if options.requires and options.requires[lib] then
			return options.requires[lib];
		end
		local f = assert(loadfile(self:get_directory() .. "/" .. lib .. ".lib.lua", "t", env));
		return f();
	end
	function module:log(level, fmt, ...) -- luacheck: ignore 212/self
		logs[#logs + 1] = { level = level, message = fmt:format(...) };
	end
	function module:get_option(key, default) -- luacheck: ignore 212/self
		local value = config[key];
		if value == nil then return default; end
		return value;
	end
	module.get_option_number = module.get_option;
	module.get_option_string = module.get_option;
	module.get_option_boolean = module.get_option;
	-- Just what the shims use of util.set: items() and contains().
	function module:get_option_set(key, default)
		local members = {};
		for _, item in ipairs(self:get_option(key, default) or {}) do
			members[item] = true;
		end
		return {
			items = function () return next, members, nil; end;
			contains = function (_, item) return members[item] == true; end;
		};
	end
	-- module:provides(kind, item): items by node (ad-hoc commands) or name.
	module.provided = {};
	function module:provides(_, item)
		self.provided[item.node or item.name] = item;
	end
	-- options.may(permission, context): Prosody 13's permission check.
	if options.may then
		function module:may(permission, context) -- luacheck: ignore 212/self
			return options.may(permission, context);
		end
	end
	-- options.stores = { name = fake.new_storage() } gives a store its own data.
	local stores = options.stores or {};
	function module:open_store(store, kind) -- luacheck: ignore 212/self
		if stores[store] then
			return kind == "map" and stores[store].map or stores[store].keyval;
		end
		if store == "invites_audit" or store == "invites_room_grants" or store == "invites"
			or store == "invites_by_name" then -- stores of their own
			stores[store] = fake.new_storage();
			return kind == "map" and stores[store].map or stores[store].keyval;
		end
		assert(store == "invite_token" or store == "roles", "unexpected store " .. tostring(store));
		return kind == "map" and storage.map or storage.keyval;
	end
	function module:hook(event, handler, priority) -- luacheck: ignore 212/self
		events[event] = events[event] or {};
		table.insert(events[event], { handler = handler, priority = priority or 0 });
	end
	module.hook_global = module.hook;
	function module:fire_event(event, data) -- luacheck: ignore 212/self
		fired[#fired + 1] = { name = event, data = data };
		for _, h in ipairs(events[event] or {}) do
			local ret = h.handler(data);
			if ret ~= nil then return ret; end
		end
	end
	function module:shared(path) -- luacheck: ignore 212/self
		shared[path] = shared[path] or {};
		return shared[path];
	end
	-- Statistics: counters that count.
	module.metrics = {};
	local counter_methods = {
		with_labels = function (counter) return counter; end;
		add = function (counter, n) counter.value = counter.value + n; end;
	};
	function module:metric(_, metric_name)
		local counter = setmetatable({ value = 0 }, { __index = counter_methods });
		self.metrics[metric_name] = counter;
		return counter;
	end
	module.items = {};
	function module:add_item(kind, item)
		self.items[#self.items + 1] = { kind = kind, item = item };
	end
	function module:add_timer(delay, callback) -- luacheck: ignore 212/self
		timers[#timers + 1] = { delay = delay, callback = callback };
	end
	-- options.depends = { name = module environment } answers module:depends().
	module.depended = {};
	function module:depends(dependency)
		self.depended[#self.depended + 1] = dependency;
		return (options.depends or {})[dependency];
	end
	-- Global hooks answer module:fire_event() too (one event bus is enough here), and
	-- fake.fire_global(module, name, data) fires only them.
	module.global_events = {};
	function module:hook_global(event, handler, priority)
		self.global_events[event] = self.global_events[event] or {};
		table.insert(self.global_events[event], { handler = handler, priority = priority or 0 });
		self:hook(event, handler, priority);
	end
	module.sent = {};
	function module:send(stanza)
		self.sent[#self.sent + 1] = stanza;
	end

	local f = assert(loadfile("lua/mod_" .. name .. ".lua", "t", env));
	f();
	return env, module;
end

-- Fires a global event hooked with module:hook_global().
function fake.fire_global(module, event, data)
	for _, h in ipairs(module.global_events[event] or {}) do
		local ret = h.handler(data);
		if ret ~= nil then return ret; end
	end
end

-- Fires a host event like Prosody does: handlers by descending priority.
function fake.fire_event(module, event, data)
	local handlers = {};
	for i, h in ipairs(module.events[event] or {}) do
		handlers[i] = h;
	end
	table.sort(handlers, function (a, b) return a.priority > b.priority; end);
	for _, h in ipairs(handlers) do
		local ret = h.handler(data);
		if ret ~= nil then return ret; end
	end
end

return fake;
