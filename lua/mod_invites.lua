-- XEP-0401 / XEP-0445 / XEP-0379: invite tokens.
-- Drop-in replacement for Prosody's mod_invites: same globals, stock's store layout or one record
-- per invite (invites_storage.lib.lua), rules in Rust.
local nodeprep = require "util.encodings".stringprep.nodeprep;

local core = module:require "invites_native";
local codes = core.codes;
local rooms = module:require "invites_rooms";
local audit_log = module:require "invites_audit";
local storage = module:require "invites_storage";
local tree = module:require "invites_tree";
local now = os.time;

local function new_core(host)
	return core.new(host, function (level, message)
		module:log(level, "%s", message);
	end);
end

local invites = new_core(module.host);
-- Where invites are stored (invites_storage.lib.lua): one record per invite, or stock's layout.
local layout;

local function layout_name()
	local name = module:get_option_string("invites_storage_layout", "records");
	if not storage.layouts[name] then
		module:log("error", "Unknown invites_storage_layout %q (records or stock): using records", name);
		return "records";
	end
	return name;
end

local function open_storage(name)
	layout = storage.open(name or layout_name(), {
		new_audit = audit_log.new_audit;
		invites = invites;
	});
	audit_log.init(layout, invites);
end

-- Moves every invite into `name`'s layout (default: the configured one) from the other:
-- counts (see storage.migrate; `configured`: the layout the configuration names), or nil and an
-- error.
function migrate_storage(name, progress) --luacheck: ignore 131/migrate_storage
	if name and name ~= layout.name then
		open_storage(name);
	end
	local counts, err = storage.migrate(layout, progress);
	if counts then
		counts.configured = layout_name();
	end
	return counts, err;
end

-- COMPAT: prosodyctl loads this module with host "*"; the store is opened by module.command.
if prosody.process_type == "prosody" or prosody.shutdown then
	open_storage();
end
if prosody.process_type == "prosody" then
	-- Invites left in the other layout (an upgrade, a restored backup, a layout switched back).
	local counts, err = migrate_storage();
	if not counts then
		module:log("error", "Failed to move invites into the %s storage layout: %s", layout.name, err);
	elseif counts.moved + counts.expired + counts.ended > 0 then
		module:log("info", "Moved %d pending invites into the %s storage layout (%d expired, %d ended)",
			counts.moved, layout.name, counts.expired, counts.ended);
	end
end

local ttl_option, default_ttl;
local function get_default_ttl()
	local option = module:get_option("invite_expiry");
	if option == nil then
		return core.default_ttl;
	end
	if option ~= ttl_option then
		-- Read as Prosody 13's get_option_period reads it, on 0.12 too.
		local ttl, ambiguous, why = core.option_period(option);
		if not ttl then
			module:log("error", "Ignoring invalid invite_expiry: %s", why);
		elseif ambiguous then
			module:log("error", "Config option 'invite_expiry' is set to ambiguous period '%s' - use full syntax e.g. '2 days'", option);
		end
		ttl_option, default_ttl = option, ttl or core.default_ttl;
	end
	return default_ttl;
end

-- The one username rule of the invite modules: the nodeprepped name, or nil when `username` is
-- not a valid one (strict: unassigned code points refused too, for names users choose).
function prep_username(username, strict) --luacheck: ignore 131/prep_username
	if type(username) ~= "string" then
		return nil;
	end
	return nodeprep(username, strict);
end

-- Heard of every host-level record this process removes.
local function removed(token)
	invites:removed(token);
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

local function add_landing_page(invite, page_kind)
	local template = module:get_option_string("invites_page");
	if not template or invite.landing_page then
		return;
	end
	if not module:get_option_set("invites_page_supports", { "account", "contact", "account-and-contact" }):contains(page_kind) then
		return;
	end
	invite.landing_page = render_url(template, { host = module.host, invite = invite });
end

-- additional_data.rooms checked for a new invite: additional_data with the rooms normalised (a
-- copy when they change), or nil, code, message naming the refused room.
local function checked_rooms(invite_type, username, additional_data, creator)
	if type(additional_data) ~= "table" or additional_data.rooms == nil then
		return additional_data;
	end
	local requester = rooms.requester(invite_type, username, additional_data, creator);
	local list, code, message = rooms.check_new(additional_data.rooms, requester);
	if not list then
		return nil, code, message;
	end
	local data = {};
	for k, v in pairs(additional_data) do
		data[k] = v;
	end
	data.rooms = list[1] and list or nil;
	return data;
end

-- `creator` (ours): who asks, for the audit record, when additional_data.source does not say.
local function create_invite(invite_type, username, allow_registration, additional_data, ttl, reusable, creator)
	local room_data, room_code, room_message = checked_rooms(invite_type, username, additional_data, creator);
	if room_code then
		module:log("info", "Refusing to create invite: %s", room_message);
		return nil, room_code, room_message;
	end
	additional_data = room_data;
	if ttl ~= nil then
		local seconds, _, why = core.parse_period(ttl);
		if not seconds then
			module:log("warn", "Refusing to create invite: %s", why);
			return nil, codes.bad_request;
		end
		ttl = seconds;
	end
	local invite, facts, why = invites:create(invite_type, username, not not allow_registration,
		ttl or get_default_ttl(), reusable, additional_data, now());
	if not invite then
		module:log("warn", "Refusing to create invite: %s", why);
		return nil, facts, why;
	end
	local may, cap_code, cap_why = tree.may_create(creator or facts.creator); -- invites_max_tree_size
	if not may then
		module:log("info", "Refusing to create invite: %s", cap_why or cap_code);
		return nil, cap_code, cap_why;
	end

	-- Before storing, so handlers can add fields (mod_invites_page sets landing_page).
	module:fire_event("invite-created", invite);
	add_landing_page(invite, facts.page_kind);

	local audit = audit_log.new_audit(invite, creator, facts);
	local ok, err = layout:create(invite, audit, facts.host_level, facts.contact_owner, facts.name_key);
	if not ok then
		module:log("warn", "Failed to store invite: %s", err);
		return nil, codes.internal_server_error;
	end
	if facts.host_level then
		invites:reservation_add(invite.token, invite, now());
	end
	audit_log.count("created", audit.kind);
	return invite;
end

-- Invitation to register an account (optionally restricted to the given username).
-- The last argument of each create_* (ours) names the creator for the audit record.
function create_account(account_username, additional_data, ttl, creator) --luacheck: ignore 131/create_account
	local username = account_username;
	if username ~= nil then
		username = prep_username(username);
		if not username then
			return nil, codes.invalid_username;
		end
	end
	return create_invite("register", username, true, additional_data, ttl, nil, creator);
end

-- Invitation to reset the password of an existing account.
-- COMPAT: accepts (username, ttl) as in 0.12 and (username, additional_data, ttl) as in later versions.
function create_account_reset(account_username, additional_data, ttl, creator) --luacheck: ignore 131/create_account_reset
	if additional_data ~= nil and type(additional_data) ~= "table" then -- (username, ttl)
		additional_data, ttl, creator = nil, additional_data, ttl;
	end
	local username = prep_username(account_username);
	if not username then
		return nil, codes.invalid_username;
	end
	local data = {};
	for k, v in pairs(additional_data or {}) do
		data[k] = v;
	end
	data.allow_reset = username;
	return create_invite("register", username, true, data, ttl or core.default_reset_ttl, nil, creator);
end

-- XEP-0401: an invite MUST NOT promise `ibr=y` when invitees cannot register on this host.
-- Also asked by mod_invites_adhoc before it offers contact invites that allow registration.
function registration_possible() --luacheck: ignore 131/registration_possible
	local host = prosody.hosts and prosody.hosts[module.host];
	local loaded = host and host.modules;
	if prosody.process_type ~= "prosody" or not loaded then
		return true; -- nothing to tell from outside the server (the command line makes account invites only)
	end
	return core.registration_possible(loaded.invites_register ~= nil, loaded.register_ibr ~= nil,
		loaded.invites_register_web ~= nil or loaded.invites_web ~= nil);
end

-- Invitation to become a contact of a local user
function create_contact(username, allow_registration, additional_data, ttl, creator) --luacheck: ignore 131/create_contact
	local inviter = prep_username(username);
	if not inviter then
		return nil, codes.invalid_username;
	end
	if allow_registration and not registration_possible() then
		module:log("debug", "Contact invite of %s without registration: invitees cannot register on this host", inviter);
		allow_registration = false;
	end
	return create_invite("roster", inviter, allow_registration, additional_data, ttl, nil, creator);
end

-- Invitation to register and join groups; reusable until it expires when a ttl is given
function create_group(group_ids, additional_data, ttl, creator) --luacheck: ignore 131/create_group
	local data = { groups = group_ids };
	for k, v in pairs(additional_data or {}) do
		data[k] = v;
	end
	return create_invite("register", nil, true, data, ttl, ttl ~= nil, creator);
end

-- Iterates pending invites that allow registration, soonest expiry first
function pending_account_invites() --luacheck: ignore 131/pending_account_invites
	local records = layout:host_records() or {};
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
	return layout:record(token);
end

-- The tokens of invites that may reserve `username`: the per-invite layout's name index, else the
-- index this process builds from the whole host-level map (read when first needed).
local function reservation_candidates(username)
	local named, err = layout:named(username);
	if named or err then
		return named, err;
	end
	if not invites:reservations_loaded() then
		local records, read_err = layout:host_records();
		if not records then
			return nil, read_err;
		end
		invites:reservations_load(records, now());
	end
	return invites:reservation_candidates(username);
end

-- The token of the pending invite that reserves a username for its account (XEP-0445), or nil;
-- nil and an error when storage failed. Used by mod_invites_register and mod_invites_adhoc.
function reserved_by(username) --luacheck: ignore 131/reserved_by
	local candidates, candidates_err = reservation_candidates(username);
	if not candidates then
		return nil, candidates_err;
	end
	-- The index says which invites may reserve the name; their records, read now, say whether
	-- they still do.
	for _, token in ipairs(candidates) do
		local record, err = read_record(token);
		if err then
			return nil, err;
		end
		if invites:reservation_confirm(username, token, record, now()) then
			return token;
		end
	end
	return nil;
end

-- Reads and validates a plausible token's host-level record: the validated invite and the
-- record, or nil and an error code.
local function validate_stored(token, username, user_expiry)
	local record, read_err = read_record(token);
	if read_err then
		return nil, read_err;
	end
	local invite, check_account, check_entry = invites:validate(token, record, username, user_expiry, now());
	if not invite then
		return nil, check_account;
	end
	return invite, record, check_account, check_entry;
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

-- Revokes a pending invite: its host-level record and, for contact invites, the inviter's entry.
-- `by` (ours): who revoked it, for the audit record and the invite-revoked event. true; or nil,
-- "not-pending" and what became of it ("used", "expired", "revoked", "unknown"), having recorded
-- nothing; or nil and another error.
function delete_account_invite(token, by) --luacheck: ignore 131/delete_account_invite
	if token == nil then
		return nil, codes.no_token;
	end
	if not core.check_token(token) then
		return nil, codes.not_pending, "unknown"; -- nothing by that name can exist
	end
	local stored, read_err = layout:standing(token);
	if not stored then
		return nil, read_err; -- without the record, the inviter's half could not be found
	end
	local record, audit = stored.record, stored.audit;
	local life = audit_log.life(token, audit, record);
	if not life.revoke_removes then
		return nil, codes.not_pending, life.state;
	end
	local revoking = life.revoke_records;
	-- Contact-only invites live at user level only: their audit record names the inviter.
	local keys = invites:revoke_plan(token, record, audit and audit.jid or nil);
	local ok, err = layout:settle(token, keys, revoking and audit and audit_log.revocation(by or "module"), removed,
		stored);
	if not ok then
		module:log("warn", "Failed to delete invite: %s", err);
		return nil, codes.internal_server_error;
	end
	if not revoking then
		return nil, codes.not_pending, life.state;
	end
	audit_log.revoked(token, record, by or "module");
	return true;
end

local valid_invite_methods = {};
local valid_invite_mt = { __index = valid_invite_methods };

-- What is stored of an invite get() returned, read now: { record = its host-level record, gone
-- once it is used up or revoked; audit = its audit record, or false }, or nil and
-- "internal-server-error". What a registration decides on, and what redeem() writes back.
function standing(invite) --luacheck: ignore 131/standing
	local token = type(invite) == "table" and invite.token;
	if not core.check_token(token) then
		return { audit = false };
	end
	return layout:standing(token);
end

-- Records that `account` used `invite` (how: "registered", "password-reset",
-- "contact-approved") and consumes it as `plan` says (a use plan: its keys go; without one, the
-- core's for a use, from what is stored now), in one write in the per-invite layout; then tells
-- other modules (invite-used). `invite_standing`: what standing() read a moment ago, which
-- `plan` was made from. true, or nil and "internal-server-error" when the invite could not be
-- consumed (the use is then not recorded).
function redeem(invite, account, how, plan, invite_standing) --luacheck: ignore 131/redeem
	local err;
	if not plan then
		invite_standing, err = standing(invite);
		if invite_standing then
			plan, err = invites:use_plan(invite, invite_standing, account ~= nil);
		end
	end
	local recorded; -- the audit record with this use
	local ok = plan ~= nil;
	if ok then
		ok, err = layout:settle(invite.token, plan.keys, account and function (audit)
			recorded = audit_log.with_use(audit, invite, account, how);
			return recorded;
		end, removed, invite_standing);
	end
	if not ok then
		module:log("error", "Failed to consume invite %s: %s", core.redact(invite.token), tostring(err));
		return nil, codes.internal_server_error;
	end
	if account then
		audit_log.used(invite, account, how, recorded);
	end
	return true;
end

-- Records that `account` used an invite without consuming it.
function record_use(invite, account, how) --luacheck: ignore 131/record_use
	return redeem(invite, account, how, { keys = {}; consume = false });
end

-- Consumes the invite (deletes it; reusable invites stay). Call after it was actually used.
function valid_invite_methods:use()
	return redeem(self, nil, nil);
end

local function account_exists(username)
	local usermanager = require "core.usermanager";
	return usermanager.user_exists(username, module.host);
end

-- Deletions made outside the server (prosodyctl deluser on 0.12 never tells it) count: the core
-- names the account that must still exist and the user whose entry must (InviterChecks).
local function check_inviter(token, account, entry_of)
	if entry_of then
		local entry, err = layout:user_entry(entry_of, token);
		if entry == nil then
			if err then
				return nil, err;
			end
			module:log("debug", "Contact invite %s of %s: the inviter's entry is gone", core.redact(token), entry_of);
			return nil, codes.token_invalid;
		end
	end
	if account and not account_exists(account) then
		module:log("debug", "Invite %s of %s: the inviter's account is gone", core.redact(token), account);
		return nil, codes.token_invalid;
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
		user_expiry, read_err = layout:user_entry(username, token);
		if user_expiry == nil then -- not this user's contact token; spare the host-level read
			if read_err then
				return nil, read_err;
			end
			return nil, codes.token_invalid;
		end
	end
	local invite, record_or_err, check_account, check_entry = validate_stored(token, username, user_expiry);
	if not invite then
		return nil, record_or_err;
	end
	local inviter_ok, inviter_err = check_inviter(token, check_account, check_entry);
	if not inviter_ok then
		return nil, inviter_err;
	end
	return setmetatable(invite, valid_invite_mt);
end

function use(token) --luacheck: ignore 131/use
	local invite = get(token);
	return invite and invite:use();
end

--- Housekeeping: expired invites and invites of deleted accounts

-- A purge: invites left in the other layout moved over, expired invites removed (an hour after
-- they expire), audit records kept long enough removed. In slices of PURGE_SLICE invites (the
-- per-invite layout reads every invite; the stock one is a single slice, its one map), so the
-- timer can let the server serve between slices. A function that does the next slice and
-- answers true, and how many invites were purged, when all is done. Storage failures leave the
-- invites for the next purge; each is logged, none raises.
local PURGE_SLICE = 250;

local function new_purge()
	local moved, move_err = migrate_storage();
	if not moved then
		module:log("error", "Failed to move invites into the %s storage layout: %s", layout.name, move_err);
	end
	local slices, slices_err = layout:slices(PURGE_SLICE);
	if not slices then
		module:log("error", "Failed to read invites to purge: %s", slices_err);
	end
	local purged = moved and moved.expired or 0; -- left behind by the move: as good as purged
	return function ()
		local host_records, audits = nil, nil;
		if slices then
			host_records, audits = slices();
		end
		if host_records then
			local tokens = invites:purge_plan(host_records, now());
			local ok, err = layout:remove_host_tokens(tokens, removed);
			if ok then
				purged = purged + #tokens;
			else
				module:log("error", "Failed to purge expired invites: %s", err);
			end
			if not layout.name_index then -- the whole map: also what other processes stored
				invites:reservations_load(host_records, now());
			end
			audit_log.purge(audits, host_records);
			return false;
		elseif audits then
			module:log("error", "Failed to read invites to purge: %s", audits);
		end
		for username in layout:users() do
			local entries, err = layout:user_map(username);
			local tokens = entries and invites:purge_plan(entries, now()) or {};
			local ok, remove_err = layout:remove_user_tokens(username, tokens);
			if not entries then
				module:log("error", "Failed to read invites of %s to purge: %s", username, err);
			elseif ok then
				purged = purged + #tokens;
			else
				module:log("error", "Failed to purge expired invites of %s: %s", username, remove_err);
			end
		end
		if purged > 0 then
			module:log("info", "Purged %d expired invites", purged);
			audit_log.count("expired", nil, purged);
		end
		return true, purged;
	end;
end

if prosody.process_type == "prosody" then
	local purge_interval = module:get_option_number("invites_purge_interval", 3600);
	local running;
	module:add_timer(module:get_option_number("invites_purge_delay", 60), function ()
		running = running or new_purge();
		if not running() then
			return 0.01; -- the next slice, once the server has served what waits
		end
		running = nil;
		return purge_interval;
	end);
end

-- The group chats of an invite `account` (bare JID) used: membership, bookmark and invitation
-- for each (invites_rooms.lib.lua), noted in the audit record of the use. Returns the per-room
-- results, or nil when the invite has none. Called by mod_invites_register.
function apply_rooms(invite, account) --luacheck: ignore 131/apply_rooms
	local results = rooms.apply(invite, account);
	if not results then
		return nil;
	end
	audit_log.note_rooms(invite, account, results);
	return results;
end

module:hook_global("user-deleted", function (event)
	if event.host == module.host then
		rooms.account_deleted(event.username);
	end
end);

-- usermanager fires this globally, for every host
module:hook_global("user-deleted", function (event)
	if event.host ~= module.host then
		return;
	end
	local username = event.username;
	local host_records, read_err = layout:records_of(username);
	if not host_records then
		module:log("error", "Failed to read invites to remove those of deleted user %s: %s", username, read_err);
	else
		local ok, err = layout:remove_host_tokens(invites:deleted_user_plan(host_records, username), removed);
		if not ok then
			module:log("error", "Failed to remove account invites of deleted user %s: %s", username, err);
		end
	end
	local ok, err = layout:remove_user(username); -- the user's own contact invites
	if not ok then
		module:log("error", "Failed to remove invites of deleted user %s: %s", username, err);
	end
end);

-- For tests and operators: purge now, all at once; how many expired invites were removed.
function purge() --luacheck: ignore 131/purge
	local step = new_purge();
	local done, purged;
	repeat
		done, purged = step();
	until done;
	return purged;
end

--- The lifecycle views (invites_audit.lib.lua), part of this module's API: all_invites();
-- list_pending(kind?, creator?); created_by(creator) -> times, pending; inspect(token).
all_invites = audit_log.all_invites; --luacheck: ignore 111/all_invites
list_pending = audit_log.list_pending; --luacheck: ignore 111/list_pending
created_by = audit_log.created_by; --luacheck: ignore 111/created_by
inspect = audit_log.inspect; --luacheck: ignore 111/inspect

-- Telling people: the inviter when an invite is used, the configuration check at load.
if prosody.process_type == "prosody" then
	module:require "invites_notify";
	module:require "invites_check".log_at_load();
end

--- Operator commands: the admin shell's `invite` section and prosodyctl (invites_admin.lib.lua)
local admin = module:require "invites_admin";
admin.register_shell();

-- prosodyctl loads this module on "*": point it at HOST and its storage.
local function switch_host(host)
	require "core.storagemanager".initialize_host(host);
	module.host = host; --luacheck: ignore 122/module
	invites = new_core(host);
	open_storage();
end

function module.command(arg)
	return admin.prosodyctl(_ENV, arg, switch_host);
end
