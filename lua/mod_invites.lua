-- XEP-0401 / XEP-0445 / XEP-0379: invite tokens.
-- Drop-in replacement for Prosody's mod_invites: same globals, same store layout, rules in Rust.
local jid_split = require "util.jid".split;
local nodeprep = require "util.encodings".stringprep.nodeprep;

local core = module:require "invites_native";
local now = os.time;

local function new_core(host)
	return core.new(host, function (level, message)
		module:log(level, "%s", message);
	end, now());
end

local invites = new_core(module.host);
-- When get() validated each invite it returned (weak: the invites belong to their holders).
local validated_at = setmetatable({}, { __mode = "k" });
local token_storage, host_view;

local function open_storage()
	token_storage = module:open_store("invite_token", "map");
	-- The same store seen as keyval: the whole host-level map in one read, and the list of users.
	host_view = module:open_store("invite_token");
end

-- COMPAT: prosodyctl loads this module with host "*"; the store is opened by module.command.
if prosody.process_type == "prosody" or prosody.shutdown then
	open_storage();
end

local ttl_option, default_ttl;
local function get_default_ttl()
	local option = module:get_option("invite_expiry");
	if option == nil then
		return core.default_ttl;
	end
	if option ~= ttl_option then
		-- Read as Prosody 13's get_option_period reads it, on 0.12 too.
		local ttl, ambiguous_or_err = core.option_period(option);
		if not ttl then
			module:log("error", "Ignoring invalid invite_expiry: %s", ambiguous_or_err);
		elseif ambiguous_or_err then
			module:log("error", "Config option 'invite_expiry' is set to ambiguous period '%s' - use full syntax e.g. '2 days'", option);
		end
		ttl_option, default_ttl = option, ttl or core.default_ttl;
	end
	return default_ttl;
end

local function prep_username(username)
	if type(username) ~= "string" then
		return nil;
	end
	return nodeprep(username);
end

-- Deletes keys in order, stopping at the first failure: plans put the key that makes an invite
-- invalid first, so a failure half-way leaves a dead invite, never a usable half.
local function delete_keys(keys)
	for _, key in ipairs(keys) do
		local deleted, set_err = token_storage:set(key.user, key.token, nil);
		if not deleted then
			return nil, set_err;
		elseif key.user == nil then
			invites:removed(key.token, now());
		end
	end
	return true;
end

-- Prosody 13's landing page templates: `invites_page` (e.g. a deployment of a static invite page
-- elsewhere) for the kinds in `invites_page_supports`. Applied after invite-created handlers, so
-- a landing page module's own link wins, as in Prosody 13 (where this runs at priority -1).
local url_escape = require "util.http".urlencode;
local render_url = require "util.interpolation".new("%b{}", url_escape, {
	urlescape = url_escape;
	noscheme = function (urlstring)
		return (urlstring:gsub("^[^:]+:", ""));
	end;
});

local function add_landing_page(invite)
	local template = module:get_option_string("invites_page");
	if not template or invite.landing_page then
		return;
	end
	local kind = invite.type == "register" and "account"
		or (invite.allow_registration and "account-and-contact" or "contact-only");
	if not module:get_option_set("invites_page_supports", { "account", "contact", "account-and-contact" }):contains(kind) then
		return;
	end
	invite.landing_page = render_url(template, { host = module.host, invite = invite });
end

local function create_invite(invite_type, username, allow_registration, additional_data, ttl, reusable)
	if ttl ~= nil then
		local seconds, err = core.parse_period(ttl);
		if not seconds then
			module:log("warn", "Refusing to create invite: %s", err);
			return nil, "bad-request";
		end
		ttl = seconds;
	end
	local invite, stored_at_host_level, contact_owner = invites:create(invite_type, username, not not allow_registration,
		ttl or get_default_ttl(), reusable, now());
	if not invite then
		return nil, stored_at_host_level;
	end
	invite.additional_data = additional_data;

	-- Before storing, so handlers can add fields (mod_invites_page sets landing_page).
	module:fire_event("invite-created", invite);
	add_landing_page(invite);

	if stored_at_host_level then
		local ok, err = token_storage:set(nil, invite.token, invite);
		if not ok then
			module:log("warn", "Failed to store account invite: %s", err);
			return nil, "internal-server-error";
		end
		invites:reservation_add(invite.token, invite, now());
	end
	if contact_owner then
		local ok, err = token_storage:set(contact_owner, invite.token, invite.expires);
		if not ok then
			module:log("warn", "Failed to store subscription invite: %s", err);
			if stored_at_host_level then -- no half-written invite
				delete_keys({ { token = invite.token } });
			end
			return nil, "internal-server-error";
		end
	end
	return invite;
end

-- Invitation to register an account (optionally restricted to the given username)
function create_account(account_username, additional_data, ttl) --luacheck: ignore 131/create_account
	local username = account_username;
	if username ~= nil then
		username = prep_username(username);
		if not username then
			return nil, "invalid-username";
		end
	end
	return create_invite("register", username, true, additional_data, ttl);
end

-- Invitation to reset the password of an existing account.
-- COMPAT: accepts (username, ttl) as in 0.12 and (username, additional_data, ttl) as in later versions.
function create_account_reset(account_username, additional_data, ttl) --luacheck: ignore 131/create_account_reset
	if type(additional_data) ~= "table" then
		additional_data, ttl = nil, additional_data;
	end
	local username = prep_username(account_username);
	if not username then
		return nil, "invalid-username";
	end
	local data = {};
	for k, v in pairs(additional_data or {}) do
		data[k] = v;
	end
	data.allow_reset = username;
	return create_invite("register", username, true, data, ttl or core.default_reset_ttl);
end

-- XEP-0401: an invite MUST NOT promise `ibr=y` when invitees cannot register on this host.
local function registration_possible()
	local host = prosody.hosts and prosody.hosts[module.host];
	local loaded = host and host.modules;
	if prosody.process_type ~= "prosody" or not loaded then
		return true; -- nothing to tell from outside the server (the command line makes account invites only)
	end
	return core.registration_possible(loaded.invites_register ~= nil, loaded.register_ibr ~= nil,
		loaded.invites_register_web ~= nil);
end

-- Invitation to become a contact of a local user
function create_contact(username, allow_registration, additional_data, ttl) --luacheck: ignore 131/create_contact
	local inviter = prep_username(username);
	if not inviter then
		return nil, "invalid-username";
	end
	if allow_registration and not registration_possible() then
		module:log("debug", "Contact invite of %s without registration: invitees cannot register on this host", inviter);
		allow_registration = false;
	end
	return create_invite("roster", inviter, allow_registration, additional_data, ttl);
end

-- Invitation to register and join groups; reusable until it expires when a ttl is given
function create_group(group_ids, additional_data, ttl) --luacheck: ignore 131/create_group
	local data = { groups = group_ids };
	for k, v in pairs(additional_data or {}) do
		data[k] = v;
	end
	return create_invite("register", nil, true, data, ttl, ttl ~= nil);
end

-- Iterates pending invites that allow registration, soonest expiry first
function pending_account_invites() --luacheck: ignore 131/pending_account_invites
	local records = host_view:get(nil) or {};
	local tokens = invites:pending(records, now());
	local i = 0;
	return function ()
		i = i + 1;
		local token = tokens[i];
		if token then
			return token, records[token];
		end
	end;
end

-- The host-level record of a token: record or nil, or nil and an error when storage failed.
local function read_record(token)
	local record, err = token_storage:get(nil, token);
	if record == nil and err then
		module:log("warn", "Failed to read invite: %s", err);
		return nil, "internal-server-error";
	end
	return record;
end

-- The whole host-level map, read when the reservation index is first needed.
local function read_host_map()
	local records, err = host_view:get(nil);
	if records == nil and err then
		module:log("warn", "Failed to read invites: %s", err);
		return nil, "internal-server-error";
	end
	return records or {};
end

-- The token of the pending invite that reserves a username for its account (XEP-0445), or nil;
-- nil and an error when storage failed. Used by mod_invites_register and mod_invites_adhoc.
function reserved_by(username) --luacheck: ignore 131/reserved_by
	return invites:reserved_by(username, now(), read_record, read_host_map);
end

-- Reads and validates a plausible token's host-level record: the validated invite and the
-- record, or nil and an error code.
local function validate_stored(token, username, user_expiry)
	local record, read_err = read_record(token);
	if read_err then
		return nil, read_err;
	end
	local invite, invalid_err = invites:validate(token, record, username, user_expiry, now());
	if not invite then
		return nil, invalid_err;
	end
	return invite, record;
end

function get_account_invite_info(token) --luacheck: ignore 131/get_account_invite_info
	local plausible, err = core.check_token(token);
	if not plausible then
		return nil, err;
	end
	local valid, record_or_err = validate_stored(token);
	if not valid then
		return nil, record_or_err;
	end
	return record_or_err;
end

-- Revokes an invite: its host-level record and, for contact invites, the inviter's entry
function delete_account_invite(token) --luacheck: ignore 131/delete_account_invite
	if token == nil then
		return nil, "no-token";
	end
	if not core.check_token(token) then
		return true; -- nothing by that name can exist
	end
	local record, read_err = read_record(token);
	if read_err then
		return nil, read_err; -- without the record, the inviter's half could not be found
	end
	local ok, err = delete_keys(invites:revoke_plan(token, record));
	if not ok then
		module:log("warn", "Failed to delete invite: %s", err);
		return nil, "internal-server-error";
	end
	return true;
end

local valid_invite_methods = {};
local valid_invite_mt = { __index = valid_invite_methods };

-- Consumes the invite (deletes it; reusable invites stay). Call after it was actually used.
function valid_invite_methods:use()
	local ok, err = delete_keys(invites:use_plan(self));
	if not ok then
		module:log("error", "Failed to consume invite %s: %s", core.redact(self.token), err);
		return nil, "internal-server-error";
	end
	return true;
end

local function account_exists(username)
	local usermanager = require "core.usermanager";
	return usermanager.user_exists(username, module.host);
end

-- Deletions made outside the server (prosodyctl deluser on 0.12 never tells it) count: a contact
-- invite is valid only while its inviter's entry (which deleting the account purges) and account
-- exist; an invite whose creator asked to befriend the invitee, only while the creator exists.
local function check_inviter(invite, token, contact_path)
	local inviter = contact_path and invite.username or invite.inviter;
	if type(inviter) ~= "string" then
		return true;
	end
	if invite.type == "roster" and not contact_path then
		local entry, err = token_storage:get(inviter, token);
		if entry == nil then
			if err then
				module:log("warn", "Failed to read invite: %s", err);
				return nil, "internal-server-error";
			end
			module:log("debug", "Contact invite %s of %s: the inviter's entry is gone", core.redact(token), inviter);
			return nil, "token-invalid";
		end
	end
	if not account_exists(inviter) then
		module:log("debug", "Invite %s of %s: the inviter's account is gone", core.redact(token), inviter);
		return nil, "token-invalid";
	end
	return true;
end

-- Returns a validated invite, or nil and "no-token" / "token-invalid" / "token-expired"
-- ("internal-server-error" when storage failed).
-- With a username, the token is checked as a contact invite of that local user (XEP-0379).
function get(token, username)
	local plausible, err = core.check_token(token);
	if not plausible then
		return nil, err;
	end
	local user_expiry;
	if username ~= nil then
		local read_err;
		user_expiry, read_err = token_storage:get(username, token);
		if user_expiry == nil then -- not this user's contact token; spare the host-level read
			if read_err then
				module:log("warn", "Failed to read invite: %s", read_err);
				return nil, "internal-server-error";
			end
			return nil, "token-invalid";
		end
	end
	local invite, invalid_err = validate_stored(token, username, user_expiry);
	if not invite then
		return nil, invalid_err;
	end
	local inviter_ok, inviter_err = check_inviter(invite, token, username ~= nil);
	if not inviter_ok then
		return nil, inviter_err;
	end
	validated_at[invite] = now();
	return setmetatable(invite, valid_invite_mt);
end

-- Whether the host-level record of an invite get() returned is still stored (not used or revoked
-- since): known without a read when this process removed nothing of it since, else read;
-- nil and "internal-server-error" when storage cannot tell.
function still_stored(invite) --luacheck: ignore 131/still_stored
	local token = type(invite) == "table" and invite.token;
	if type(token) ~= "string" then
		return false;
	end
	local known = validated_at[invite] and invites:still_stored(token, validated_at[invite]);
	if known ~= nil then
		return known;
	end
	local record, err = read_record(token);
	if err then
		return nil, err;
	end
	return record ~= nil;
end

function use(token) --luacheck: ignore 131/use
	local invite = get(token);
	return invite and invite:use();
end

--- Housekeeping: expired invites and invites of deleted accounts

local function remove_tokens(user, tokens)
	if #tokens == 0 then
		return true;
	end
	local keys = {};
	for _, token in ipairs(tokens) do
		keys[token] = token_storage.remove;
	end
	local ok, err = token_storage:set_keys(user, keys);
	if ok and user == nil then
		for _, token in ipairs(tokens) do
			invites:removed(token, now());
		end
	end
	return ok, err;
end

-- Storage failures leave the invites for the next purge; each is logged, none raises.
local function purge_expired()
	local removed = 0;
	local host_records, read_err = host_view:get(nil);
	if host_records then
		local tokens = invites:purge_plan(host_records, now());
		local ok, err = remove_tokens(nil, tokens);
		if ok then
			removed = removed + #tokens;
		else
			module:log("error", "Failed to purge expired invites: %s", err);
		end
		-- Also picks up what other processes stored meanwhile.
		invites:reservations_load(host_records, now());
	elseif read_err then
		module:log("error", "Failed to read invites to purge: %s", read_err);
	end
	-- An iterator triple (internal storage hands back lfs.dir's), or nil and an error.
	local users, users_state, users_init = host_view:users();
	if not users then
		module:log("error", "Failed to list users with invites to purge: %s", users_state);
		users = function () end;
	end
	for username in users, users_state, users_init do
		if username ~= "" then -- COMPAT: mod_storage_sql lists host-level rows as user ""
			local entries, err = host_view:get(username);
			local tokens = entries and invites:purge_plan(entries, now()) or {};
			local ok, remove_err = remove_tokens(username, tokens);
			if entries == nil and err then
				module:log("error", "Failed to read invites of %s to purge: %s", username, err);
			elseif ok then
				removed = removed + #tokens;
			else
				module:log("error", "Failed to purge expired invites of %s: %s", username, remove_err);
			end
		end
	end
	if removed > 0 then
		module:log("info", "Purged %d expired invites", removed);
	end
	return removed;
end

if prosody.process_type == "prosody" then
	local purge_interval = module:get_option_number("invites_purge_interval", 3600);
	module:add_timer(module:get_option_number("invites_purge_delay", 60), function ()
		purge_expired();
		return purge_interval;
	end);
end

-- usermanager fires this globally, for every host
module:hook_global("user-deleted", function (event)
	if event.host ~= module.host then
		return;
	end
	local username = event.username;
	local host_records, read_err = host_view:get(nil);
	if host_records == nil and read_err then
		module:log("error", "Failed to read invites to remove those of deleted user %s: %s", username, read_err);
	elseif host_records then
		local ok, err = remove_tokens(nil, invites:deleted_user_plan(host_records, username));
		if not ok then
			module:log("error", "Failed to remove account invites of deleted user %s: %s", username, err);
		end
	end
	local ok, err = host_view:set(username, nil); -- the user's own contact invites
	if not ok then
		module:log("error", "Failed to remove invites of deleted user %s: %s", username, err);
	end
end);

-- For tests and operators: purge now
function purge() --luacheck: ignore 131/purge
	return purge_expired();
end

--- Admin shell: the `invite` section, the same verbs on 0.12 and 13
--   prosodyctl shell invite create_account HOST|JID [--role ROLE]... [--group ID]... [--admin] [--expires-after PERIOD]
--   prosodyctl shell invite create_reset JID [--expires-after PERIOD]
--   prosodyctl shell invite create_contact JID [--allow-registration] [--expires-after PERIOD]
--   prosodyctl shell invite show HOST TOKEN | delete HOST TOKEN | list HOST
-- Names, arguments and flags are stock 13's (core.shell_commands); 13 also accepts --admin here.

-- What this release's stock modules expect: 0.12 has the shell's plain `invite` table and reads an
-- invite's roles as a set; 13 (and trunk) has shell-command items and reads roles as a list,
-- first = primary role.
local major_version = tonumber((prosody.version or ""):match("^(%d+)%."));
local stock_0_12 = major_version ~= nil and major_version < 13;

local function stored_roles(list)
	if not stock_0_12 then
		return list;
	elseif #list == 0 then
		return nil;
	end
	local set = {};
	for _, role in ipairs(list) do
		set[role] = true;
	end
	return set;
end

local function host_module(host)
	local mod_invites = host and require "core.modulemanager".get_module(host, "invites");
	if not mod_invites then
		return nil, "mod_invites not loaded on this host";
	end
	return mod_invites;
end

local function expires_after(opts, default)
	local text = opts.expires_after;
	if text == nil then
		return default;
	end
	local seconds, err = core.parse_period(text);
	if not seconds then
		return nil, "--expires-after: " .. err;
	end
	return seconds;
end

local function share(invite, err)
	if not invite then
		return nil, err;
	end
	return true, invite.landing_page or invite.uri;
end

local function format_time(t)
	return os.date("%Y-%m-%d %T", t);
end

-- What an invite is for, in stock 13's words: long for `show`, short for `list`.
local function describe(invite, long)
	local node, host = jid_split(invite.jid);
	local data = type(invite.additional_data) == "table" and invite.additional_data or {};
	if invite.type == "roster" then
		return (long and "Invitation to register and become a contact of " or "Contact with ") .. invite.jid;
	elseif data.allow_reset then
		return "Password reset for " .. tostring(data.allow_reset) .. "@" .. tostring(host);
	elseif node then
		return long and ("Invitation to register on %s with username '%s'"):format(host, node)
			or ("Register on %s with username %s"):format(host, node);
	end
	return (long and "Invitation to register on " or "Register on ") .. tostring(host);
end

local shell_verbs = {};

function shell_verbs.create_account(_, mod, opts, user_jid)
	local username = jid_split(user_jid);
	local ttl, err = expires_after(opts);
	if err then
		return nil, err;
	end
	local roles = {};
	if opts.admin then
		roles[1] = "prosody:admin";
	end
	for _, role in ipairs(opts.role or {}) do
		if not (opts.admin and role == "prosody:admin") then
			roles[#roles + 1] = role;
		end
	end
	return share(mod.create_account(username, { roles = stored_roles(roles); groups = opts.group or {} }, ttl));
end

function shell_verbs.create_reset(self, mod, opts, user_jid)
	local username, host = jid_split(user_jid);
	if not username then
		return nil, "Supply the JID of the account you want to generate a password reset for";
	end
	local ttl, err = expires_after(opts, core.default_reset_ttl);
	if err then
		return nil, err;
	end
	if not require "core.usermanager".user_exists(username, host) then
		return nil, "No such account: " .. user_jid;
	end
	local invite, create_err = mod.create_account_reset(username, ttl);
	if not invite then
		return nil, create_err;
	end
	self.session.print(invite.landing_page or invite.uri);
	return true, ("Password reset link for %s valid until %s"):format(user_jid, format_time(invite.expires));
end

function shell_verbs.create_contact(_, mod, opts, user_jid)
	local username = jid_split(user_jid);
	if not username then
		return nil, "Supply the JID of the account you want the recipient to become a contact of";
	end
	local allow, flag_err = core.parse_flag(opts.allow_registration);
	if allow == nil then
		return nil, "--allow-registration: " .. flag_err;
	end
	local ttl, err = expires_after(opts);
	if err then
		return nil, err;
	end
	return share(mod.create_contact(username, allow, nil, ttl));
end

function shell_verbs.show(self, mod, _, _, token)
	local invite, err = mod.get_account_invite_info(token);
	if not invite then
		return nil, err;
	end
	local print = self.session.print;
	print(describe(invite, true));
	if invite.inviter then
		print("Creator:", invite.inviter);
	end
	print("Created:", format_time(invite.created_at));
	print("Expires:", format_time(invite.expires));
	print("");
	print("XMPP URI:", invite.uri);
	if invite.landing_page then
		print("Web link:", invite.landing_page);
	end
	local data = invite.additional_data;
	if type(data) == "table" then
		local roles = type(data.roles) == "table" and data.roles or {};
		local list = {};
		for _, role in ipairs(roles) do
			list[#list + 1] = role;
		end
		for role, granted in pairs(roles) do
			if type(role) == "string" and granted then
				list[#list + 1] = role;
			end
		end
		if list[1] then
			print("Role:", list[1]);
		end
		if list[2] then
			print("Secondary roles:", table.concat(list, ", ", 2));
		end
		if type(data.groups) == "table" and data.groups[1] then
			print("Groups:", table.concat(data.groups, ", "));
		end
		if data.note then
			print("Comment:", tostring(data.note));
		end
	end
	return true, "Invitation valid";
end

function shell_verbs.delete(_, mod, _, _, token)
	local ok, err = mod.delete_account_invite(token);
	if not ok then
		return nil, err;
	end
	return true, "Invitation deleted";
end

function shell_verbs.list(self, mod)
	local print_row = require "util.human.io".table({
		{ title = "Token"; key = "token"; width = 24 };
		{ title = "Expires"; key = "expires"; width = 20 };
		{ title = "Description"; key = "description"; width = "100%" };
	}, self.session.width);
	self.session.print(print_row());
	local count = 0;
	for token, invite in mod.pending_account_invites() do
		count = count + 1;
		self.session.print(print_row({
			token = token;
			expires = os.date("%Y-%m-%dT%T", invite.expires);
			description = describe(invite);
		}));
	end
	return true, ("%d pending invites"):format(count);
end

-- One handler per verb, for both shells: 13 passes the fixed arguments and its parsed flags;
-- 0.12 passes every word as a string (as does a Lua call without a flags table).
local function shell_handler(command)
	local verb, fixed = shell_verbs[command.name], #command.args;
	return function (self, ...)
		local args, opts = { ... }, select(fixed + 1, ...);
		if type(opts) ~= "table" then
			local words = {};
			for i = 1, select("#", ...) do
				words[#words + 1] = args[i] ~= nil and tostring(args[i]) or nil;
			end
			args, opts = core.parse_shell_args(command.name, words);
			if not args then
				return nil, opts;
			end
		end
		local target = args[1];
		if type(target) ~= "string" then
			return nil, "Missing argument: " .. command.args[1].name;
		end
		local _, host = jid_split(target);
		local mod, err = host_module(host);
		if not mod then
			return nil, err;
		end
		return verb(self, mod, opts, table.unpack(args, 1, fixed));
	end;
end

if not stock_0_12 then
	-- Prosody 13: shell-command items (never the old table as well: assigning it wipes these).
	for _, command in ipairs(core.shell_commands) do
		command.handler = shell_handler(command);
		module:add_item("shell-command", command);
	end
else
	local console_env = module:shared("/*/admin_shell/env");
	console_env.invite = console_env.invite or {};
	for _, command in ipairs(core.shell_commands) do
		console_env.invite[command.name] = shell_handler(command);
	end
end

--- prosodyctl mod_invites generate HOST [--reset USER] [--admin] [--role ROLE] [--group ID]... [--expires-after PERIOD]
function module.command(arg)
	if arg[1] ~= "generate" then
		io.stderr:write("usage: prosodyctl mod_invites generate HOST [options] (see --help)\n");
		return 2;
	end
	local request, err = core.parse_generate({ table.unpack(arg, 2) });
	if not request then
		io.stderr:write("prosodyctl mod_invites generate: ", err, "\n");
		return 2;
	end
	if request.help then
		print(core.generate_usage);
		return 0;
	end

	local host = request.host;
	if not prosody.hosts[host] then
		io.stderr:write("prosodyctl mod_invites generate: host ", host, " is not defined in the configuration\n");
		return 2;
	end
	local reset_username;
	if request.reset then
		reset_username = prep_username(request.reset);
		if not reset_username then
			io.stderr:write("prosodyctl mod_invites generate: not a valid username: ", request.reset, "\n");
			return 2;
		end
	end

	require "core.storagemanager".initialize_host(host);
	module.host = host; --luacheck: ignore 122/module
	invites = new_core(host);
	open_storage();

	-- Optional landing page module, so the printed link is the web page when there is one
	local invites_page_module = module:get_option_string("invites_page_module", "invites_page");
	if require "core.modulemanager".get_modules_for_host(host):contains(invites_page_module) then
		-- mod_invites_page takes its default URL from module:http_url() as it loads, a method mod_http
		-- defines; here mod_http would only come later (through mod_register_apps), so stock prints the
		-- bare URI unless `invites_page` is set. With http_external_url the URL is known without any open
		-- port: load mod_http first. (Without it, mod_http could only say "http://disabled.invalid/" here.)
		if module:get_option_string("http_external_url") then
			module:depends("http");
		end
		module:depends(invites_page_module);
	end

	local invite, create_err;
	if reset_username then
		invite, create_err = create_account_reset(reset_username, request.expires_after);
	else
		invite, create_err = create_account(nil, { roles = stored_roles(request.roles); groups = request.groups },
			request.expires_after);
	end
	if not invite then
		io.stderr:write("prosodyctl mod_invites generate: could not create the invite: ", tostring(create_err), "\n");
		return 1;
	end
	print(invite.landing_page or invite.uri);
	return 0;
end
