-- Bench-only module (make bench): times the invites API in-process and watches the event loop.
--
-- Loaded only by bench/run.py, from a plugin path no real configuration contains. It serves
-- POST /invites_bench on the HTTP port (bound to 127.0.0.1 by the bench) with a JSON body
-- {"op": NAME, ...} and answers JSON. It calls whichever mod_invites is loaded on this host
-- (stock, or ours in either storage layout) through module:depends("invites"), exactly as a
-- consumer module would, and times each call with the monotonic clock (util.time.monotonic).
--
-- It never fills stores itself: run.py clones one invite made here through the API straight into
-- the store's files or rows, so filling 100 000 invites costs this process nothing (peak RSS).
--
-- Breakdown mode (measure with breakdown = true, or breakdown_start/stop around registrations):
-- the storage layer and the native library's methods are wrapped with timers for the duration
-- of the call, and each sample is split into storage reads, storage writes, binding and the rest.
--
-- Every loop is bounded (max_iters, and a time budget checked between calls).

local json = require "util.json";
local timer = require "util.timer";
local monotonic = require "util.time".monotonic;
local storagemanager = require "core.storagemanager";
local modulemanager = require "core.modulemanager";

local invites = module:depends("invites");
local host = module.host;

-- Where an invite can live, by layout: removed (untimed) after a sample so the number of live
-- invites stays what run.py prepared. A store an invite is not in costs next to nothing here,
-- except the stock layout's host-level map, which is only non-empty in that layout.
local token_map = module:open_store("invite_token", "map");
local records_map = module:open_store("invites", "map");
local audit_store = module:open_store("invites_audit");

local function layout()
	local path = modulemanager.get_module(host, "invites");
	path = path and path.module and path.module.path or "";
	if path:match("^/usr/lib/prosody/") or path:match("/prosody/modules/") then
		return "stock", path;
	end
	return module:get_option_string("invites_storage_layout", "records"), path;
end

-- Strings that cannot be tokens: what a landing page or a scanner hands to get().
local JUNK = {
	"",
	"t=4ZkQ2&c=conversations",
	"not a token",
	"<script>alert(1)</script>",
	"../../../../etc/passwd",
	"%00%00%00",
	string.rep("A", 600),
	"xmpp:bench?register;preauth=abc",
};

local function remove_invite(token)
	token_map:set(nil, token, nil);
	records_map:set(token, "invite", nil);
	audit_store:set(token, nil);
end

local function median(list)
	if #list == 0 then
		return nil;
	end
	local sorted = {};
	for i, v in ipairs(list) do
		sorted[i] = v;
	end
	table.sort(sorted);
	local mid = #sorted // 2;
	if #sorted % 2 == 1 then
		return sorted[mid + 1];
	end
	return (sorted[mid] + sorted[mid + 1]) / 2;
end

--- Breakdown instrumentation

-- acc: totals (seconds, calls) while a timed section runs; nil when not instrumented.
local acc;
local originals = {};
local depth = 0;

-- store_of(...) names the store a storage call is about (counted per store in `by_store`).
local function timed(kind, fn, store_of)
	return function (...)
		if not acc or acc.paused or depth > 0 then
			return fn(...);
		end
		depth = depth + 1;
		local t0 = monotonic();
		local results = table.pack(fn(...));
		acc[kind] = acc[kind] + (monotonic() - t0);
		acc[kind .. "_calls"] = acc[kind .. "_calls"] + 1;
		if store_of then
			local key = kind .. " " .. tostring(store_of(...));
			acc.by_store[key] = (acc.by_store[key] or 0) + 1;
		end
		depth = depth - 1;
		return table.unpack(results, 1, results.n);
	end;
end

local function wrap(tbl, name, kind, store_of)
	local fn = rawget(tbl, name);
	if type(fn) ~= "function" then
		return;
	end
	originals[#originals + 1] = { tbl, name, fn };
	rawset(tbl, name, timed(kind, fn, store_of));
end

local STORE_READS = { get = true, get_all = true, users = true, find = true, summary = true, get_key = true };
local STORE_WRITES = { set = true, set_keys = true, delete = true, set_key = true, append = true };

local function install()
	if #originals > 0 then
		return;
	end
	-- Internal storage: every read parses a file and every write serialises one (util.datamanager,
	-- shared by all hosts; counted only while a timed section runs on this one).
	local dm = storagemanager.olddm;
	local function dm_store(_, _, store)
		return store;
	end
	for _, name in ipairs({ "load", "list_load", "users", "stores" }) do
		wrap(dm, name, "read", dm_store);
	end
	for _, name in ipairs({ "store", "list_store", "list_append" }) do
		wrap(dm, name, "write", dm_store);
	end
	-- Other drivers (SQL): one transaction per store method.
	if module:get_option("storage", "internal") ~= "internal" then
		for _, typ in ipairs({ "keyval", "map" }) do
			local probe = storagemanager.open(host, "invites_bench_probe", typ);
			local mt = probe and getmetatable(probe);
			local class = mt and type(mt.__index) == "table" and mt.__index;
			if class then
				local function sql_store(store)
					return store.store;
				end
				for name in pairs(STORE_READS) do
					wrap(class, name, "read", sql_store);
				end
				for name in pairs(STORE_WRITES) do
					wrap(class, name, "write", sql_store);
				end
			end
		end
	end
	-- The native library (ours only): every method of its object types.
	local _, path = layout();
	local dir = path:match("^(.*)/[^/]+$");
	local open_core = dir and package.loadlib(dir .. "/invites_core.so", "luaopen_invites_core");
	if open_core then
		local core = open_core();
		local objects = {};
		if core.new then
			objects[#objects + 1] = core.new(host, function () end, os.time()); -- older libraries took the clock
		end
		if core.new_registration then
			objects[#objects + 1] = core.new_registration(host, function () end);
		end
		for _, object in ipairs(objects) do
			local mt = debug.getmetatable(object);
			local class = mt and type(mt.__index) == "table" and mt.__index;
			if class then
				local names = {};
				for name, fn in pairs(class) do
					if type(fn) == "function" then
						names[#names + 1] = name;
					end
				end
				for _, name in ipairs(names) do
					wrap(class, name, "binding");
				end
			end
		end
	end
end

local function uninstall()
	for i = #originals, 1, -1 do
		local tbl, name, fn = table.unpack(originals[i]);
		rawset(tbl, name, fn);
	end
	originals = {};
	acc = nil;
end

local function new_acc()
	return { read = 0, write = 0, binding = 0, read_calls = 0, write_calls = 0, binding_calls = 0, by_store = {} };
end

--- Timed operations

-- Repeats step(i) (which returns seconds for one call) at least min_iters times, then until
-- budget seconds are spent or max_iters is reached. With breakdown, each sample also records
-- its storage read, write and binding time.
local function repeat_timed(step, opts, breakdown)
	local min_iters = opts.min_iters or 3;
	local max_iters = opts.max_iters or 2000;
	local budget = opts.budget or 0.3;
	collectgarbage();
	local samples, parts, started = {}, {}, monotonic();
	local i = 0;
	while i < max_iters and (i < min_iters or monotonic() - started < budget) do
		i = i + 1;
		if breakdown then
			acc = new_acc();
			acc.paused = true;
		end
		samples[i] = step(i);
		if breakdown then
			parts[i] = acc;
			acc = nil;
		end
		if samples[i] > 0.001 then
			-- A slow call (a big storage file) leaves a lot of garbage: collect it before the next
			-- sample so each starts from the same heap instead of paying for its predecessor.
			collectgarbage();
		end
	end
	return samples, parts;
end

-- Runs fn between two clock reads, with breakdown timers live (when installed) only inside.
local function clocked(fn)
	if acc then
		acc.paused = false;
	end
	local t0 = monotonic();
	fn();
	local t1 = monotonic();
	if acc then
		acc.paused = true;
	end
	return t1 - t0;
end

local function create_untimed()
	local invite, err = invites.create_account();
	if not invite then
		error("create_account failed: " .. tostring(err));
	end
	return invite.token;
end

local measures = {};

-- Each step keeps the number of live invites as prepared: set-up and clean-up are untimed.

-- create_account(); the new invite is removed again afterwards (untimed).
function measures.create_account(opts, breakdown)
	return repeat_timed(function ()
		local invite, err;
		local t = clocked(function ()
			invite, err = invites.create_account();
		end);
		if not invite then
			error("create_account failed: " .. tostring(err));
		end
		remove_invite(invite.token);
		return t;
	end, opts, breakdown);
end

-- get(token) of one valid, stored invite.
function measures.get(opts, breakdown)
	local token = create_untimed();
	local samples, parts = repeat_timed(function ()
		local invite;
		local t = clocked(function ()
			invite = invites.get(token);
		end);
		if not invite then
			error("get of a pending invite failed");
		end
		return t;
	end, opts, breakdown);
	remove_invite(token);
	return samples, parts;
end

-- get(token) + invite:use() of a fresh invite (created beforehand, untimed).
function measures.get_use(opts, breakdown)
	return repeat_timed(function (i)
		local token = create_untimed();
		local invite;
		local t = clocked(function ()
			invite = invites.get(token);
			if invite then
				invite:use();
			end
		end);
		if not invite then
			error("get of a fresh invite failed");
		end
		if i == 1 and invites.get(token) ~= nil then
			error("use() left the invite usable");
		end
		remove_invite(token);
		return t;
	end, opts, breakdown);
end

-- get() of strings that cannot be tokens.
function measures.junk(opts, breakdown)
	return repeat_timed(function (i)
		local junk = JUNK[(i - 1) % #JUNK + 1];
		local invite;
		local t = clocked(function ()
			invite = invites.get(junk);
		end);
		if invite then
			error("a junk token was accepted");
		end
		return t;
	end, opts, breakdown);
end

local function summary(samples, parts)
	local us = {};
	for i, s in ipairs(samples) do
		us[i] = s * 1e6;
	end
	local out = { median_us = median(us); n = #us; samples_us = us };
	if parts and #parts > 0 then
		-- The breakdown of the median-cost samples: medians of each part over all samples.
		local read, write, binding, reads, writes, calls = {}, {}, {}, {}, {}, {};
		for i, p in ipairs(parts) do
			read[i], write[i], binding[i] = p.read * 1e6, p.write * 1e6, p.binding * 1e6;
			reads[i], writes[i], calls[i] = p.read_calls, p.write_calls, p.binding_calls;
		end
		local total = out.median_us;
		local r, w, b = median(read), median(write), median(binding);
		out.breakdown = {
			total_us = total; read_us = r; write_us = w; binding_us = b;
			rest_us = math.max(0, total - r - w - b);
			reads = median(reads); writes = median(writes); binding_calls = median(calls);
		};
	end
	return out;
end

--- Event-loop stalls. Prosody's loop (net.server_epoll) handles ready connections one after the
--- other and runs timers only when none is ready, so under sustained load a timer's lateness
--- measures the queue, not a stall. A stall is one handler that does not return: the monitor
--- times every connection read and write handler (the server's connection methods, wrapped
--- while it runs) and reports the longest, besides a 5 ms timer's lateness.
local monitor;

local function monitor_start(interval, conn)
	if monitor then
		monitor.running = false;
	end
	local state = { interval = interval, lateness = {}, running = true, handlers = 0, slow = 0, longest = 0 };
	monitor = state;
	local mt = conn and getmetatable(conn);
	local iface = type(mt) == "table" and type(mt.__index) == "table" and mt.__index;
	if iface then
		state.restore = {};
		for _, name in ipairs({ "onreadable", "onwritable" }) do
			local original = rawget(iface, name);
			if type(original) == "function" then
				state.restore[name] = original;
				rawset(iface, name, function (...)
					local t0 = monotonic();
					local a, b, c = original(...);
					local spent = monotonic() - t0;
					state.handlers = state.handlers + 1;
					if spent > state.longest then
						state.longest = spent;
					end
					if spent > 0.05 then
						state.slow = state.slow + 1;
					end
					return a, b, c;
				end);
			end
		end
		state.iface = iface;
	end
	local due = monotonic() + interval;
	timer.add_task(interval, function ()
		if not state.running then
			return nil;
		end
		local now = monotonic();
		local late = now - due;
		if late < 0 then
			late = 0;
		end
		state.lateness[#state.lateness + 1] = late;
		due = now + interval;
		return interval;
	end);
end

local function monitor_stop()
	local state = monitor;
	monitor = nil;
	if not state then
		return { n = 0 };
	end
	state.running = false;
	for name, original in pairs(state.restore or {}) do
		rawset(state.iface, name, original);
	end
	local list = state.lateness;
	table.sort(list);
	local function pct(p)
		if #list == 0 then
			return 0;
		end
		return list[math.max(1, math.ceil(#list * p))] * 1e3;
	end
	return {
		n = #list; max_ms = pct(1); p99_ms = pct(0.99); p50_ms = pct(0.5);
		handlers = state.handlers; longest_handler_ms = state.longest * 1e3; handlers_over_50ms = state.slow;
	};
end

--- Requests

local ops = {};

function ops.info()
	local which, path = layout();
	return { host = host; layout = which; invites = path; lua_memory_kib = collectgarbage("count") };
end

-- One pending account invite made through the API: run.py clones what was stored.
function ops.template()
	return { token = create_untimed(); layout = (layout()) };
end

-- n single-use account invites through the API (registration figure): their tokens.
function ops.pool(body)
	local tokens = {};
	for i = 1, tonumber(body.n) or 0 do
		tokens[i] = create_untimed();
	end
	return { tokens = tokens };
end

-- Removes these invites from every store (a registration batch cut short by its deadline).
function ops.discard(body)
	for _, token in ipairs(body.tokens or {}) do
		remove_invite(token);
	end
	return { count = #(body.tokens or {}) };
end

-- Whether these tokens are still usable invites (after registrations: none should be).
function ops.pending(body)
	local count = 0;
	for _, token in ipairs(body.tokens or {}) do
		if invites.get(token) then
			count = count + 1;
		end
	end
	return { count = count };
end

-- Time the given API operations; returns {op = {median_us, n, samples_us[, breakdown]}}.
function ops.measure(body)
	local out = {};
	local breakdown = body.breakdown == true;
	if breakdown then
		install();
	end
	local ok, err = pcall(function ()
		for _, name in ipairs(body.ops or {}) do
			local fn = measures[name];
			if not fn then
				error("unknown measure " .. tostring(name));
			end
			local opts = (body.opts or {})[name] or {};
			out[name] = summary(fn(opts, breakdown));
		end
	end);
	if breakdown then
		uninstall();
	end
	if not ok then
		error(err, 0);
	end
	return out;
end

-- Breakdown of whatever the server does between start and stop (registrations over c2s).
function ops.breakdown_start()
	install();
	acc = new_acc();
	acc.started = monotonic();
	acc.cpu = os.clock();
	return { started = true };
end

function ops.breakdown_stop()
	local a = acc or new_acc();
	local out = {
		read_s = a.read; write_s = a.write; binding_s = a.binding;
		reads = a.read_calls; writes = a.write_calls; binding_calls = a.binding_calls;
		by_store = a.by_store;
		wall_s = a.started and monotonic() - a.started or 0;
		cpu_s = a.cpu and os.clock() - a.cpu or 0;
	};
	uninstall();
	return out;
end

function ops.monitor_start(body, event)
	monitor_start(tonumber(body.interval) or 0.005, event.request.conn);
	return { started = true };
end

function ops.monitor_stop()
	return monitor_stop();
end

function ops.gc()
	collectgarbage();
	collectgarbage();
	return { lua_memory_kib = collectgarbage("count") };
end

local function reply(response, status, body)
	response.status_code = status;
	response.headers.content_type = "application/json";
	return json.encode(body);
end

local function handle(event)
	local request, response = event.request, event.response;
	local body = json.decode(request.body or "");
	if type(body) ~= "table" or type(body.op) ~= "string" or not ops[body.op] then
		return reply(response, 400, { error = "bad request" });
	end
	local ok, result = xpcall(ops[body.op], debug.traceback, body, event);
	if not ok then
		module:log("warn", "bench op %s raised: %s", body.op, tostring(result));
		return reply(response, 500, { error = tostring(result) });
	end
	return reply(response, 200, result);
end

module:depends("http");
module:provides("http", {
	route = {
		["POST"] = handle;
	};
});
