-- Password policy: minimum length, and no username inside the password.
--
-- Shipped with the invite modules because the community module mod_invites_register_web depends on
-- a module named "password_policy", which Debian's 2023 prosody-modules package does not contain.
-- Where the host has the community module (the 2025 snapshot that comes with Prosody 13 does),
-- that one is loaded in our place, so this directory never shadows it. This
-- is an independent implementation of the interface that module (and mod_invites_register_web)
-- uses:
--   option password_policy = { length = 8; exclude_username = true }   (those are the defaults)
--   get_policy()                          -> the effective policy table (templates read .length)
--   check_password(password, { username = U }?) -> true | nil, message, failed_rule
-- It also enforces the policy on in-band registration (XEP-0077, including invite-based
-- registration and password resets) and on in-band password changes.

-- The community module, if a plugin directory other than ours has one.
local function community_module()
	local ours = module:get_directory():gsub("/+$", "");
	for dir in (prosody.paths.plugins or ""):gmatch("[^;]+") do
		dir = dir:gsub("/+$", "");
		if dir ~= ours then
			for _, path in ipairs({ dir .. "/mod_password_policy/mod_password_policy.lua", dir .. "/mod_password_policy.lua" }) do
				local file = io.open(path);
				if file then
					file:close();
					return path;
				end
			end
		end
	end
end

local community = community_module();
if community then
	module:log("debug", "Loading the community mod_password_policy from %s", community);
	-- In this module's environment, as if Prosody had found it first.
	return assert(loadfile(community, "t", _ENV))();
end

local st = require "util.stanza";

local defaults = { length = 8; exclude_username = true };

local function read_policy()
	local configured = module:get_option("password_policy");
	if configured ~= nil and type(configured) ~= "table" then
		module:log("error", "Ignoring password_policy: expected a table like { length = 8 }, got a %s", type(configured));
		configured = nil;
	end
	local policy = {};
	for key, value in pairs(configured or {}) do
		policy[key] = value;
	end
	for key, value in pairs(defaults) do
		if policy[key] == nil then
			policy[key] = value;
		end
	end
	local length = tonumber(policy.length);
	if not length or length < 0 or length % 1 ~= 0 then
		module:log("error", "Ignoring password_policy.length = %s: expected a whole number", tostring(policy.length));
		length = defaults.length;
	end
	policy.length = length;
	return policy;
end

local policy = read_policy();

function get_policy() --luacheck: ignore 131/get_policy
	return policy;
end

-- Characters, not bytes, when the password is valid UTF-8 (and the Lua has utf8).
local utf8_len = utf8 and utf8.len;
local function length_of(password)
	return utf8_len and utf8_len(password) or #password;
end

function check_password(password, additional_info) --luacheck: ignore 131/check_password
	if type(password) ~= "string" or password == "" then
		return nil, "No password provided", "no-password";
	end
	if length_of(password) < policy.length then
		return nil, ("Password is too short (minimum %d characters)"):format(policy.length), "length";
	end
	local username = type(additional_info) == "table" and additional_info.username;
	if policy.exclude_username and type(username) == "string" and username ~= ""
		and password:lower():find(username:lower(), 1, true) then
		return nil, "Password must not include your username", "username";
	end
	return true;
end

-- In-band registration, invite-based registration and password resets (mod_register_ibr passes the
-- password; mod_invites_register_web checks the policy itself and fires this without one).
module:hook("user-registering", function (event)
	if event.password == nil or event.allowed == false then
		return;
	end
	local ok, message, rule = check_password(event.password, { username = event.username });
	if not ok then
		module:log("debug", "Registration of %s refused by the password policy (%s)", tostring(event.username), rule);
		event.allowed = false;
		event.error_type, event.error_condition, event.reason = "modify", "not-acceptable", message;
	end
end, 100);

-- In-band password change by a logged-in user (mod_user_account_management).
local function password_change(event)
	local origin, stanza = event.origin, event.stanza;
	if stanza.attr.type ~= "set" or origin.type ~= "c2s" then
		return;
	end
	local password = stanza.tags[1]:get_child_text("password");
	if password == nil then
		return; -- account removal, or a malformed request the handler will refuse
	end
	local ok, message, rule = check_password(password, { username = origin.username });
	if not ok then
		module:log("debug", "Password change of %s refused by the password policy (%s)", tostring(origin.username), rule);
		origin.send(st.error_reply(stanza, "modify", "not-acceptable", message));
		return true;
	end
end
module:hook("iq/self/jabber:iq:register:query", password_change, 10);
module:hook("iq/host/jabber:iq:register:query", password_change, 10);
