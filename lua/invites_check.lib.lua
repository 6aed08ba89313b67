-- The configuration check (README "Telling people"): `prosodyctl mod_invites check [HOST]`, the
-- shell's `invite check HOST`, and the same findings logged once as warnings when mod_invites is
-- loaded. This file gathers the facts (options, modules, components, the group chats pending
-- invites carry); which facts make which finding is the core's (core.check).
-- Loaded by mod_invites and invites_admin (module:require).
-- Prosody's managers, required when used (the busted specs run without them).
local configmanager = setmetatable({}, { __index = function (_, k) return require "core.configmanager"[k]; end });
local modulemanager = setmetatable({}, { __index = function (_, k) return require "core.modulemanager"[k]; end });

local core = module:require "invites_native";

local check = {};

local function option(host, name, default)
	local value = configmanager.get(host, name);
	if value == nil then
		return default;
	end
	return value;
end

local function first_option(host, ...)
	for _, name in ipairs({ ... }) do
		local value = configmanager.get(host, name);
		if value ~= nil then
			return value, name;
		end
	end
end

-- Lists and sets as the configuration holds them, as a list of strings.
local function string_list(value)
	if type(value) == "string" then
		return { value };
	end
	local list = {};
	for k, v in pairs(type(value) == "table" and value or {}) do
		if type(k) == "number" and type(v) == "string" then
			list[#list + 1] = v;
		elseif type(k) == "string" and v == true then
			list[#list + 1] = k;
		end
	end
	return list;
end

local function as_string(value)
	return type(value) == "string" and value or nil;
end

-- The group chats of pending invites: { [room jid] = how many invites carry it }.
local function pending_rooms(mod)
	local rooms = {};
	for _, record in mod.pending_account_invites() do
		local data = type(record) == "table" and record.additional_data;
		for _, room in ipairs(type(data) == "table" and type(data.rooms) == "table" and data.rooms or {}) do
			local room_jid = type(room) == "table" and room.jid or room;
			if type(room_jid) == "string" then
				rooms[room_jid] = (rooms[room_jid] or 0) + 1;
			end
		end
	end
	return rooms;
end

local function array_of(set)
	local list = {};
	for name in set:items() do
		list[#list + 1] = name;
	end
	return list;
end

-- What core.check needs to know about `host` (mod: mod_invites' environment for that host).
-- Without `with_invites` the stored invites are not read (the check at load: no storage reads
-- while the server starts).
function check.facts(mod, host, with_invites)
	local running = prosody.process_type == "prosody" and prosody.hosts[host] and prosody.hosts[host].modules;
	local loaded, auth_creates;
	if running then
		loaded = {};
		for name in pairs(running) do
			loaded[#loaded + 1] = name;
		end
		local provider = prosody.hosts[host].users;
		if type(provider) == "table" and provider.name ~= "null" then
			auth_creates = type(rawget(provider, "create_user")) == "function"; -- not the null provider's, behind it
		end
	end
	local muc_components = {};
	for name in pairs(configmanager.getconfig()) do
		if name ~= "*" and configmanager.get(name, "component_module") == "muc" then
			muc_components[#muc_components + 1] = name;
		end
	end
	local exempt, exempt_option = first_option(host, "invites_preauth_exempt", "registration_allowlist", "registration_whitelist");
	return {
		host = host;
		authentication = as_string(option(host, "authentication"));
		auth_creates = auth_creates;
		enabled = array_of(modulemanager.get_modules_for_host(host));
		loaded = loaded;
		invite_only = option(host, "registration_invite_only", true) ~= false;
		allow_registration = option(host, "allow_registration", false) == true;
		invites_page = as_string(option(host, "invites_page"));
		http_external_url = as_string(option(host, "http_external_url"));
		http_host = as_string(option(host, "http_host"));
		muc_components = muc_components;
		pending_rooms = with_invites and pending_rooms(mod) or {};
		exempt = exempt ~= nil and string_list(exempt) or {};
		exempt_option = exempt_option;
		require_encryption = option(host, "c2s_require_encryption", option(host, "require_encryption", true)) ~= false;
		notify_inviter = option(host, "invites_notify_inviter", true) ~= false;
	};
end

-- The findings for `host`: { { code, text }, ... }.
function check.run(mod, host, without_invites)
	return core.check(check.facts(mod, host, not without_invites));
end

-- At module load (once every module of the host is loaded: a timer), each finding as a warning;
-- all but those about stored invites (rooms-without-muc), which the commands report.
function check.log_at_load()
	if prosody.process_type ~= "prosody" then
		return;
	end
	module:add_timer(1, function ()
		local ok, findings = pcall(check.run, _ENV, module.host, true);
		if not ok then
			module:log("error", "The configuration check failed: %s", tostring(findings));
			return;
		end
		for _, finding in ipairs(findings) do
			module:log("warn", "Configuration: %s (prosodyctl mod_invites check)", finding.text);
		end
	end);
end

-- The hosts `prosodyctl mod_invites check` looks at without HOST: every VirtualHost with
-- mod_invites enabled.
function check.hosts()
	local list = {};
	for name in pairs(configmanager.getconfig()) do
		if name ~= "*" and configmanager.get(name, "component_module") == nil
			and modulemanager.get_modules_for_host(name):contains("invites") then
			list[#list + 1] = name;
		end
	end
	table.sort(list);
	return list;
end

return check;
