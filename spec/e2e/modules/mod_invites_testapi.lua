-- Test-only HTTP bridge into a running server's mod_invites environment.
--
-- Loaded exclusively by the end-to-end harness (spec/e2e), from a plugin
-- path that only test configurations contain. It listens wherever mod_http
-- listens; the harness binds that to 127.0.0.1 only.
--
--   GET  /invites_testapi/ping  -> "pong" (readiness probe)
--   POST /invites_testapi       -> body {"fn": NAME, "args": [...], "nargs": N, "host": HOST}
--                                  reply {"results": [...]} or {"error": ..., "traceback": ...}
--
-- NAME is either one of the helpers in `helpers` below or the name of a
-- global function in mod_invites' environment on this module's host.

local json = require "util.json";
local array = require "util.array";
local it = require "util.iterators";
local modulemanager = require "core.modulemanager";
local usermanager = require "core.usermanager";
local rostermanager = require "core.rostermanager";

local unpack = table.unpack or _G.unpack;
local pack = table.pack or function (...) return { n = select("#", ...), ... }; end

local host = module.host;

-- Lua value -> something util.json encodes without surprises.
-- Sequences become arrays, everything else an object with string keys,
-- nil becomes null, functions and userdata are described by their type.
local function export(value, seen)
	local vtype = type(value);
	if value == nil then
		return json.null;
	elseif vtype == "string" or vtype == "boolean" then
		return value;
	elseif vtype == "number" then
		if value ~= value or value == math.huge or value == -math.huge then
			return tostring(value);
		end
		return value;
	elseif vtype ~= "table" then
		return "<" .. vtype .. ">";
	end
	seen = seen or {};
	if seen[value] then
		return "<cycle>";
	end
	seen[value] = true;
	local count, is_sequence = 0, true;
	for k in pairs(value) do
		count = count + 1;
		if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
			is_sequence = false;
		end
	end
	local out;
	if is_sequence and count > 0 and #value == count then
		out = array();
		for i = 1, count do
			out[i] = export(value[i], seen);
		end
	else
		out = {};
		for k, v in pairs(value) do
			out[tostring(k)] = export(v, seen);
		end
	end
	seen[value] = nil;
	return out;
end

-- Decoded JSON -> plain Lua values (null -> nil, no array metatables).
local function import(value)
	if value == json.null then
		return nil;
	elseif type(value) == "table" then
		local out = {};
		for k, v in pairs(value) do
			out[k] = import(v);
		end
		return out;
	end
	return value;
end

local function invites_env()
	local env = modulemanager.get_module(host, "invites");
	if not env then
		error("mod_invites is not loaded on " .. host, 0);
	end
	return env;
end

-- If a function returned an iterator triple, drain it into [[k, v], ...].
local function drain_if_iterator(results)
	if results.n >= 1 and type(results[1]) == "function" then
		local list = {};
		for k, v in results[1], results[2], results[3] do
			list[#list + 1] = { k, v };
		end
		return pack(list);
	end
	return results;
end

local helpers = {};

-- get(token, username?) and then :use() on the validated invite.
-- Returns invite, use_result (or nil, err when get fails).
function helpers.get_and_use(token, username)
	local invite, err = invites_env().get(token, username);
	if not invite then
		return nil, err;
	end
	return invite, invite:use();
end

-- The stock layout's view of invites, whatever the layout (invites_storage_layout): host level
-- (user = nil) → record, user level (inviter, token) → expiry. In the per-invite layout a pending
-- host-level record lives in its entry (store `invites`, (token, "invite"), field `record`); one
-- the module has not moved over yet is still in `invite_token`, so reads look there too and
-- records planted where no entry exists go there (as an older prosodyctl would write them).
local function per_invite()
	return module:get_option_string("invites_storage_layout", "records") == "records";
end

local function entry_of(token)
	return module:open_store("invites", "map"):get(token, "invite");
end

-- n account invites made through the API at once (for the tests of big stores): their tokens.
function helpers.create_many(n)
	local tokens = {};
	for i = 1, n do
		local invite, err = invites_env().create_account();
		if not invite then
			error(("create_account failed after %d invites: %s"):format(i - 1, tostring(err)), 0);
		end
		tokens[i] = invite.token;
	end
	return tokens;
end

function helpers.store_get(user, key)
	if user == nil and per_invite() then
		local entry = entry_of(key);
		if entry then
			return entry.record;
		end
	end
	return module:open_store("invite_token", "map"):get(user, key);
end

function helpers.store_set(user, key, value)
	local entry = user == nil and per_invite() and entry_of(key);
	if entry then
		entry.record = value;
		if type(value) == "table" then
			entry.expires = value.expires; -- a backdated record: its audit says so too
		end
		return module:open_store("invites", "map"):set(key, "invite", entry);
	end
	return module:open_store("invite_token", "map"):set(user, key, value);
end

-- Keyval view: the whole host-level (user=nil) or user-level table.
function helpers.store_all(user)
	local map = module:open_store("invite_token"):get(user);
	if user ~= nil or not per_invite() then
		return map;
	end
	map = map or {};
	local entries = module:open_store("invites");
	for token in entries:users() do
		local entry = entry_of(token);
		map[token] = entry and entry.record or nil;
	end
	return next(map) and map or nil;
end

-- The stock layout's own store, as it is (to plant or inspect what the stock modules write).
function helpers.stock_get(user, key)
	return module:open_store("invite_token", "map"):get(user, key);
end

function helpers.stock_set(user, key, value)
	return module:open_store("invite_token", "map"):set(user, key, value);
end

function helpers.keyval_get(store, user)
	return module:open_store(store):get(user);
end

-- The roles an account holds, as a list: on 13 the primary role then the secondary ones (sorted),
-- from the authorization provider; on 0.12 the names in the roles store (sorted).
function helpers.user_roles(username)
	local list = {};
	if usermanager.get_user_role then
		local primary = usermanager.get_user_role(username, host);
		list[1] = primary and primary.name or nil;
		local secondary = {};
		for name in pairs(usermanager.get_user_secondary_roles(username, host) or {}) do
			secondary[#secondary + 1] = name;
		end
		table.sort(secondary);
		for _, name in ipairs(secondary) do
			list[#list + 1] = name;
		end
		return list;
	end
	for name in pairs(module:open_store("roles"):get(username) or {}) do
		list[#list + 1] = name;
	end
	table.sort(list);
	return list;
end

-- The audit record of a token (its entry in the per-invite layout, store invites_audit in the
-- stock one), to read or backdate.
function helpers.audit_get(token)
	if per_invite() then
		return entry_of(token);
	end
	return module:open_store("invites_audit"):get(token);
end

function helpers.audit_set(token, record)
	if per_invite() then
		return module:open_store("invites", "map"):set(token, "invite", record);
	end
	return module:open_store("invites_audit"):set(token, record);
end

-- The lifecycle events mod_invites fired on this host, in order.
local lifecycle_events = {};
module:hook("invite-used", function (event)
	lifecycle_events[#lifecycle_events + 1] = {
		event = "invite-used"; token = event.invite and event.invite.token; username = event.username; how = event.how;
	};
end);
module:hook("invite-revoked", function (event)
	lifecycle_events[#lifecycle_events + 1] = { event = "invite-revoked"; token = event.token; by = event.by };
end);

function helpers.lifecycle_events()
	return lifecycle_events;
end

-- Group chats (a MUC component on this server): rooms made and inspected through mod_muc's API.
local function muc_room(room_jid)
	local room_host = room_jid:match("@(.+)$");
	local mod_muc = room_host and modulemanager.get_module(room_host, "muc");
	if not mod_muc then
		error("no MUC component on " .. tostring(room_host), 0);
	end
	return mod_muc.get_room_from_jid(room_jid), mod_muc;
end

-- config: name, password, members_only, allow_member_invites, persistent (default true), and
-- affiliations = { [jid] = affiliation }.
function helpers.muc_create(room_jid, config)
	config = config or {};
	local _, mod_muc = muc_room(room_jid);
	local room = assert(mod_muc.create_room(room_jid));
	room:set_persistent(config.persistent ~= false);
	room:set_members_only(config.members_only == true);
	room:set_allow_member_invites(config.allow_member_invites == true);
	if config.name then
		room:set_name(config.name);
	end
	if config.password then
		room:set_password(config.password);
	end
	for jid, affiliation in pairs(config.affiliations or {}) do
		assert(room:set_affiliation(true, jid, affiliation));
	end
	room:save(true);
	return true;
end

function helpers.muc_affiliation(room_jid, jid)
	local room = muc_room(room_jid);
	return room and room:get_affiliation(jid) or nil;
end

function helpers.muc_set_affiliation(room_jid, jid, affiliation)
	local room = muc_room(room_jid);
	return room:set_affiliation(true, jid, affiliation);
end

function helpers.muc_destroy(room_jid)
	local room = muc_room(room_jid);
	room:destroy(nil, "test");
	return true;
end

-- What invite-rooms-applied reported on this host, in order.
local rooms_events = {};
module:hook("invite-rooms-applied", function (event)
	rooms_events[#rooms_events + 1] = { account = event.account; username = event.username; token = event.invite.token;
		results = event.results };
end);

function helpers.rooms_events()
	return rooms_events;
end

function helpers.create_user(username, password)
	return usermanager.create_user(username, password, host);
end

function helpers.delete_user(username)
	return usermanager.delete_user(username, host);
end

function helpers.user_exists(username)
	return usermanager.user_exists(username, host);
end

function helpers.test_password(username, password)
	return usermanager.test_password(username, host, password);
end

function helpers.roster(username)
	local roster = rostermanager.load_roster(username, host);
	local items = {};
	for contact, item in pairs(roster or {}) do
		if contact then
			items[contact] = item;
		end
	end
	return items;
end

-- Types of the named globals of mod_invites' environment (API surface checks).
function helpers.env_types(names)
	local env = invites_env();
	local types = {};
	for _, name in ipairs(names or {}) do
		types[name] = type(rawget(env, name));
	end
	return types;
end

function helpers.loaded_modules()
	return it.to_array(it.keys(modulemanager.get_modules(host)));
end

-- {name = file the module was loaded from} for the modules loaded on this host.
function helpers.module_paths()
	local paths = {};
	for name, env in pairs(modulemanager.get_modules(host)) do
		paths[name] = env.module and env.module.path or false;
	end
	return paths;
end

function helpers.now()
	return os.time();
end

-- Storage faults of mod_storage_test_faulty (stores configured `storage = { STORE = "test_faulty" }`):
-- the next `count` calls of `op` ("get", "set", "users") on `store` fail (all of them without a
-- count), after `skip` calls went through; scope "all", "user" (user-level only) or "host".
function helpers.set_fault(store, op, scope, count, skip)
	local faults = module:shared("/*/storage_test_faulty/faults");
	faults[store] = faults[store] or {};
	faults[store][op] = { scope = scope or "all", count = count, skip = skip };
	return true;
end

function helpers.clear_faults()
	local faults = module:shared("/*/storage_test_faulty/faults");
	for store in pairs(faults) do
		faults[store] = nil;
	end
	return true;
end

-- The failures produced so far: [{store, op, user}], and forgets them.
function helpers.fault_hits()
	local hits = module:shared("/*/storage_test_faulty/hits");
	local list = {};
	for i, hit in ipairs(hits) do
		list[i] = hit;
		hits[i] = nil;
	end
	return list;
end

-- Reloads one of this host's modules (module:reload), as an operator would mid-flow.
function helpers.reload_module(name)
	return modulemanager.reload(host, name);
end

local function call(fn_name, args, nargs)
	local fn = helpers[fn_name];
	if not fn then
		local env = invites_env();
		fn = rawget(env, fn_name);
		if fn == nil then
			fn = env[fn_name];
		end
		if type(fn) ~= "function" then
			error("mod_invites has no function named " .. tostring(fn_name), 0);
		end
	end
	return drain_if_iterator(pack(fn(unpack(args, 1, nargs))));
end

local function reply_json(response, status, body)
	response.status_code = status;
	response.headers.content_type = "application/json";
	return json.encode(body);
end

local function handle_call(event)
	local request, response = event.request, event.response;
	local body, decode_err = json.decode(request.body or "");
	if type(body) ~= "table" or type(body.fn) ~= "string" then
		return reply_json(response, 400, { error = "bad request: " .. tostring(decode_err or "fn missing") });
	end
	if body.host ~= nil and body.host ~= json.null and body.host ~= host then
		-- Prosody's HTTP server falls back to a default host for an unknown
		-- Host header; never answer for a host the caller did not ask for.
		return reply_json(response, 421, { error = "asked for host " .. tostring(body.host)
			.. " but reached " .. host .. " (is invites_testapi loaded there?)" });
	end
	local args = import(body.args) or {};
	local nargs = tonumber(body.nargs) or #args;

	local traceback;
	local ok, results = xpcall(call, function (err)
		traceback = debug.traceback(tostring(err), 2);
		return err;
	end, body.fn, args, nargs);
	if not ok then
		-- Keep the phrase the harness scans for out of the log: a raised error
		-- travels back to the test, which decides whether it is a failure.
		module:log("warn", "call %s raised: %s", body.fn, tostring(results));
		return reply_json(response, 500, { error = tostring(results), traceback = traceback });
	end

	local out = array();
	for i = 1, results.n do
		out[i] = export(results[i]);
	end
	return reply_json(response, 200, { results = out });
end

module:depends("http");
module:provides("http", {
	route = {
		["GET /ping"] = function () return "pong"; end;
		["POST"] = handle_call;
	};
});
