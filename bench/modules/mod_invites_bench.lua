-- Bench-only module (make bench): times the invites API in-process and watches the event loop.
--
-- Loaded only by bench/run.py, from a plugin path no real configuration contains. It serves
-- POST /invites_bench on the HTTP port (bound to 127.0.0.1 by the bench) with a JSON body
-- {"op": NAME, ...} and answers JSON. It calls whichever mod_invites is loaded on this host
-- (stock or ours) through module:depends("invites"), exactly as a consumer module would, and
-- times each call with the monotonic clock (util.time.monotonic).
--
-- Every loop is bounded (max_iters, and a time budget checked between calls).

local json = require "util.json";
local array = require "util.array";
local id = require "util.id";
local timer = require "util.timer";
local monotonic = require "util.time".monotonic;

local invites = module:depends("invites");
local host = module.host;

local map_store = module:open_store("invite_token", "map");
local keyval_store = module:open_store("invite_token");

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

-- A record as the stock module stores it (the format both implementations read and write).
local function new_record(token, now, ttl)
	return {
		type = "register";
		jid = host;
		token = token;
		allow_registration = true;
		uri = "xmpp:" .. host .. "?register;preauth=" .. token;
		created_at = now - 60;
		expires = now + ttl;
		reusable = false;
		additional_data = { source = "bench" };
	};
end

local function new_records(n, ttl)
	local now, map, tokens = os.time(), {}, {};
	for i = 1, n do
		local token = id.medium();
		map[token] = new_record(token, now, ttl);
		tokens[i] = token;
	end
	return map, tokens;
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

local function summary(samples)
	local us = array();
	for i, s in ipairs(samples) do
		us[i] = s * 1e6;
	end
	local max = 0;
	for _, v in ipairs(us) do
		if v > max then
			max = v;
		end
	end
	return { median_us = median(us); n = #us; max_us = max; samples_us = us };
end

-- Repeats step(i) (which returns seconds for one call) at least min_iters times, then until
-- budget seconds are spent or max_iters is reached.
local function repeat_timed(step, opts)
	local min_iters = opts.min_iters or 3;
	local max_iters = opts.max_iters or 2000;
	local budget = opts.budget or 0.3;
	collectgarbage();
	local samples, started = {}, monotonic();
	local i = 0;
	while i < max_iters and (i < min_iters or monotonic() - started < budget) do
		i = i + 1;
		samples[i] = step(i);
		if samples[i] > 0.001 then
			-- A slow call (a big storage file) leaves a lot of garbage: collect it before the next
			-- sample so each starts from the same heap instead of paying for its predecessor.
			collectgarbage();
		end
	end
	return samples;
end

local function remove_tokens(tokens)
	if #tokens == 0 then
		return true;
	end
	local keys = {};
	for _, token in ipairs(tokens) do
		keys[token] = map_store.remove;
	end
	return assert(map_store:set_keys(nil, keys));
end

local function add_records(n, ttl)
	local map, tokens = new_records(n, ttl or 86400);
	assert(map_store:set_keys(nil, map));
	return tokens;
end

local measures = {};

-- Each step keeps the store at its prepared size: setup and clean-up inside a step are untimed.

-- create_account(); the new invite is removed again afterwards (untimed).
function measures.create_account(opts)
	return repeat_timed(function ()
		local t0 = monotonic();
		local invite, err = invites.create_account();
		local t1 = monotonic();
		if not invite then
			error("create_account failed: " .. tostring(err));
		end
		remove_tokens({ invite.token });
		return t1 - t0;
	end, opts);
end

-- get(token) of one valid, stored invite.
function measures.get(opts)
	local token = add_records(1)[1];
	local samples = repeat_timed(function ()
		local t0 = monotonic();
		local invite, err = invites.get(token);
		local t1 = monotonic();
		if not invite then
			error("get failed: " .. tostring(err));
		end
		return t1 - t0;
	end, opts);
	remove_tokens({ token });
	return samples;
end

-- get(token) + invite:use() of a fresh invite (added beforehand, untimed).
function measures.get_use(opts)
	return repeat_timed(function ()
		local token = add_records(1)[1];
		local t0 = monotonic();
		local invite, err = invites.get(token);
		if not invite then
			error("get failed: " .. tostring(err));
		end
		invite:use();
		local t1 = monotonic();
		if map_store:get(nil, token) ~= nil then
			error("use() did not remove the invite");
		end
		return t1 - t0;
	end, opts);
end

-- get() of strings that cannot be tokens.
function measures.junk(opts)
	return repeat_timed(function (i)
		local junk = JUNK[(i - 1) % #JUNK + 1];
		local t0 = monotonic();
		local invite = invites.get(junk);
		local t1 = monotonic();
		if invite then
			error("a junk token was accepted");
		end
		return t1 - t0;
	end, opts);
end

--- Event-loop stall monitor: a short repeating timer; lateness = how long after its due time
--- it actually ran. The worst lateness is the longest the loop was blocked.
local monitor;

-- Internal storage reads (mod_storage_internal goes through storagemanager.olddm.load), counted
-- while the monitor runs: shows whether a request touched storage at all.
local olddm = require "core.storagemanager".olddm;
local original_load;

local function count_reads(state)
	original_load = original_load or olddm.load;
	olddm.load = function (...)
		state.reads = state.reads + 1;
		return original_load(...);
	end;
end

local function stop_counting()
	if original_load then
		olddm.load = original_load;
		original_load = nil;
	end
end

local function monitor_start(interval)
	if monitor then
		monitor.running = false;
		stop_counting();
	end
	local state = { interval = interval, lateness = {}, running = true, reads = 0 };
	monitor = state;
	count_reads(state);
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
	stop_counting();
	local list = state.lateness;
	table.sort(list);
	local function pct(p)
		if #list == 0 then
			return 0;
		end
		return list[math.max(1, math.ceil(#list * p))] * 1e3;
	end
	return { n = #list; max_ms = pct(1); p99_ms = pct(0.99); p50_ms = pct(0.5); storage_reads = state.reads };
end

--- Requests

local ops = {};

function ops.info()
	local modulemanager = require "core.modulemanager";
	local function path(name)
		local env = modulemanager.get_module(host, name);
		return env and env.module and env.module.path or json.null;
	end
	return {
		host = host;
		invites = path("invites");
		invites_register = path("invites_register");
		has_purge = type(rawget(invites, "purge")) == "function";
		lua_memory_kib = collectgarbage("count");
	};
end

-- Replace the host-level map by n fresh records (expired ones when body.expired).
function ops.fill(body)
	local n = tonumber(body.n) or 0;
	local ttl = body.expired and -86400 or 86400 * 30;
	local map = new_records(n, ttl);
	local t0 = monotonic();
	assert(keyval_store:set(nil, next(map) and map or nil));
	local count = 0;
	for _ in pairs(keyval_store:get(nil) or {}) do
		count = count + 1;
	end
	collectgarbage();
	return { count = count; seconds = monotonic() - t0 };
end

-- n single-use invites for the registration figure: returns their tokens.
function ops.pool(body)
	local n = tonumber(body.n) or 0;
	local map, tokens = new_records(n, 86400);
	assert(keyval_store:set(nil, next(map) and map or nil));
	return { tokens = tokens };
end

function ops.count()
	local count = 0;
	for _ in pairs(keyval_store:get(nil) or {}) do
		count = count + 1;
	end
	return { count = count };
end

-- Time the given API operations; returns {op = {median_us, n, max_us, samples_us}}.
function ops.measure(body)
	local out = {};
	for _, name in ipairs(body.ops or {}) do
		local fn = measures[name];
		if not fn then
			error("unknown measure " .. tostring(name));
		end
		local opts = (body.opts or {})[name] or {};
		out[name] = summary(fn(opts));
	end
	return out;
end

-- The purge ours runs on a timer, called now (stock has none: returns supported = false).
function ops.purge()
	local purge = rawget(invites, "purge");
	if type(purge) ~= "function" then
		return { supported = false };
	end
	local t0 = monotonic();
	local removed = purge();
	return { supported = true; removed = removed; seconds = monotonic() - t0 };
end

function ops.monitor_start(body)
	monitor_start(tonumber(body.interval) or 0.005);
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
	local ok, result = xpcall(ops[body.op], debug.traceback, body);
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
