-- XEP-0401 / XEP-0445 / XEP-0379: invite tokens.
-- Drop-in replacement for Prosody's mod_invites: same globals, same store layout, rules in Rust.
local jid_bare = require "util.jid".bare;
local jid_split = require "util.jid".split;
local nodeprep = require "util.encodings".stringprep.nodeprep;

local core = module:require "invites_native";
local rooms = module:require "invites_rooms";
local now = os.time;

local function new_core(host)
	return core.new(host, function (level, message)
		module:log(level, "%s", message);
	end, now());
end

local invites = new_core(module.host);
-- When get() validated each invite it returned (weak: the invites belong to their holders).
local validated_at = setmetatable({}, { __mode = "k" });
local token_storage, host_view, audit_store;

local function open_storage()
	token_storage = module:open_store("invite_token", "map");
	-- The same store seen as keyval: the whole host-level map in one read, and the list of users.
	host_view = module:open_store("invite_token");
	-- One audit record per invite, keyed by its token (never in invite_token, whose layout stays
	-- stock's): each read and write touches one small record, whatever the number of invites.
	audit_store = module:open_store("invites_audit");
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

--- Lifecycle: audit records, events, statistics

local metrics = {};
if prosody.process_type == "prosody" then
	metrics.created = module:metric("counter", "created", "", "Invites created", { "kind" });
	metrics.used = module:metric("counter", "used", "", "Invite uses", { "how" });
	metrics.revoked = module:metric("counter", "revoked", "", "Invites revoked", {});
	metrics.expired = module:metric("counter", "expired", "", "Expired invites purged", {});
end

local function count(metric, label, n)
	local counter = metrics[metric];
	if counter then
		(label and counter:with_labels(label) or counter:with_labels()):add(n or 1);
	end
end

local function additional(invite)
	return type(invite.additional_data) == "table" and invite.additional_data or {};
end

-- What an invite is: account, reset, contact, account-and-contact.
local function kind_of(invite)
	if invite.type == "roster" then
		return invite.allow_registration and "account-and-contact" or "contact";
	end
	return additional(invite).allow_reset and "reset" or "account";
end

-- Who made it: the JID an ad-hoc command or module put in additional_data.source (or the source
-- itself: "shell", "prosodyctl", "api/token/ID"), else the inviter of a contact invite.
local function creator_of(invite)
	local source = additional(invite).source;
	if type(source) == "string" and source ~= "" then
		return source:find("@", 1, true) and jid_bare(source) or source;
	end
	if invite.type == "roster" then
		local inviter = jid_split(invite.jid or "") or invite.inviter or invite.username;
		return inviter and (inviter .. "@" .. module.host) or "unknown";
	end
	return "module";
end

local function max_uses_of(invite)
	local max_uses = additional(invite).max_uses;
	return math.type(max_uses) == "integer" and max_uses >= 1 and max_uses or nil;
end

-- The audit record of a token: record, false when there is none, or nil and an error.
local function read_audit(token)
	local record, err = audit_store:get(token);
	if record == nil and err then
		module:log("error", "Failed to read the audit record of an invite: %s", err);
		return nil, "internal-server-error";
	end
	return record or false;
end

local function new_audit(invite, creator)
	return {
		kind = kind_of(invite);
		creator = creator or creator_of(invite);
		jid = invite.jid;
		created_at = invite.created_at;
		expires = invite.expires;
		reusable = invite.reusable or nil;
		max_uses = max_uses_of(invite);
		uses = {};
	};
end

-- How many more registrations an invite allows: max_uses and the uses so far (nil for an invite
-- without a limit), or nil and an error. For mod_invites_register's claims.
function usage(invite) --luacheck: ignore 131/usage
	local max_uses = max_uses_of(invite);
	if not max_uses then
		return nil;
	end
	local audit, err = read_audit(invite.token);
	if audit == nil then
		return nil, err;
	end
	return max_uses, audit and #audit.uses or 0;
end

-- Records that `account` used an invite (how: "registered", "password-reset", "contact-approved")
-- and tells other modules (invite-used).
function record_use(invite, account, how) --luacheck: ignore 131/record_use
	local audit = read_audit(invite.token);
	if audit ~= nil then
		audit = audit or new_audit(invite);
		table.insert(audit.uses, { account = account; at = now(); how = how });
		local ok, err = audit_store:set(invite.token, audit);
		if not ok then
			module:log("error", "Failed to record the use of an invite by %s: %s", account, err);
		end
	end
	count("used", how);
	module:fire_event("invite-used", { invite = invite; username = account; how = how });
end

local function record_revocation(token, record, by)
	local audit = read_audit(token);
	if audit then
		audit.revoked_at, audit.revoked_by = now(), by;
		local ok, err = audit_store:set(token, audit);
		if not ok then
			module:log("error", "Failed to record the revocation of an invite: %s", err);
		end
	end
	count("revoked");
	module:fire_event("invite-revoked", { token = token; invite = record; by = by });
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
	if list[1] and additional_data.allow_reset then
		return nil, "bad-request", "A password reset invite cannot carry group chats";
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
		local seconds, err = core.parse_period(ttl);
		if not seconds then
			module:log("warn", "Refusing to create invite: %s", err);
			return nil, "bad-request";
		end
		ttl = seconds;
	end
	local max_uses = type(additional_data) == "table" and additional_data.max_uses or nil;
	if max_uses ~= nil and not (math.type(max_uses) == "integer" and max_uses >= 1 and allow_registration) then
		module:log("warn", "Refusing to create invite: max_uses must be a whole number from 1, on invites that allow registration");
		return nil, "bad-request";
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
	local ok, err = audit_store:set(invite.token, new_audit(invite, creator));
	if not ok then
		module:log("warn", "Failed to store the audit record of an invite: %s", err);
		delete_keys(invites:revoke_plan(invite.token, invite)); -- no invite without its audit record
		return nil, "internal-server-error";
	end
	count("created", kind_of(invite));
	return invite;
end

-- Invitation to register an account (optionally restricted to the given username).
-- The last argument of each create_* (ours) names the creator for the audit record.
function create_account(account_username, additional_data, ttl, creator) --luacheck: ignore 131/create_account
	local username = account_username;
	if username ~= nil then
		username = prep_username(username);
		if not username then
			return nil, "invalid-username";
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
		return nil, "invalid-username";
	end
	local data = {};
	for k, v in pairs(additional_data or {}) do
		data[k] = v;
	end
	data.allow_reset = username;
	return create_invite("register", username, true, data, ttl or core.default_reset_ttl, nil, creator);
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
function create_contact(username, allow_registration, additional_data, ttl, creator) --luacheck: ignore 131/create_contact
	local inviter = prep_username(username);
	if not inviter then
		return nil, "invalid-username";
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
	if not invites:reservations_loaded() then
		local records, err = read_host_map();
		if not records then
			return nil, err;
		end
		invites:reservations_load(records, now());
	end
	-- The index says which invites may reserve the name; their records, read now, say whether
	-- they still do.
	for _, token in ipairs(invites:reservation_candidates(username)) do
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

-- Revokes an invite: its host-level record and, for contact invites, the inviter's entry.
-- `by` (ours): who revoked it, for the audit record and the invite-revoked event.
function delete_account_invite(token, by) --luacheck: ignore 131/delete_account_invite
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
	local audit = read_audit(token);
	local keys = invites:revoke_plan(token, record);
	if audit and audit.kind == "contact" then
		-- Contact-only invites live at user level only: the audit record names the inviter.
		table.insert(keys, 1, { user = jid_split(audit.jid or ""); token = token });
	end
	local ok, err = delete_keys(keys);
	if not ok then
		module:log("warn", "Failed to delete invite: %s", err);
		return nil, "internal-server-error";
	end
	if audit and not audit.revoked_at then
		record_revocation(token, record, by or "module");
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

-- The lifecycle of one invite from its audit record: { state, uses_left, purge_audit }.
local function lifecycle(token, audit)
	local stored = token_storage:get(nil, token) ~= nil;
	if not stored and audit.kind == "contact" then
		stored = token_storage:get(jid_split(audit.jid or ""), token) ~= nil;
	end
	local last = audit.uses[#audit.uses];
	return core.lifecycle({
		stored = stored;
		expires = audit.expires;
		uses = #audit.uses;
		max_uses = audit.max_uses;
		reusable = audit.reusable;
		revoked_at = audit.revoked_at;
		last_use = last and last.at;
	}, now(), audit_retention());
end

-- Audit records are kept for invites_audit_retention after their invite ended.
function audit_retention() --luacheck: ignore 131/audit_retention
	local seconds = core.option_period(module:get_option("invites_audit_retention", "90 days"));
	return seconds or 90 * 86400;
end

-- Every audit record: { [token] = record }, or nil and an error.
local function read_audits()
	local audits = {};
	local tokens, tokens_state, tokens_init = audit_store:users();
	if not tokens then
		if tokens_state then
			module:log("error", "Failed to list audit records: %s", tokens_state);
			return nil, "internal-server-error";
		end
		return audits;
	end
	for token in tokens, tokens_state, tokens_init do
		local audit, err = audit_store:get(token);
		if audit == nil and err then
			module:log("error", "Failed to read an audit record: %s", err);
			return nil, "internal-server-error";
		end
		if type(audit) == "table" and type(audit.uses) == "table" then
			audits[token] = audit;
		end
	end
	return audits;
end

function purge_audit() --luacheck: ignore 131/purge_audit
	local audits = read_audits();
	local removed = 0;
	for token, audit in pairs(audits or {}) do
		if lifecycle(token, audit).purge_audit then
			local ok, err = audit_store:set(token, nil);
			if not ok then
				module:log("error", "Failed to purge an audit record: %s", err);
				return removed;
			end
			removed = removed + 1;
		end
	end
	if removed > 0 then
		module:log("info", "Purged %d audit records", removed);
	end
	return removed;
end

-- Every invite with its audit record, for the admin views: { token, audit, state, uses_left }.
-- Invites created before audit records existed (or by the stock modules) get one made up from
-- what invite_token holds.
function all_invites() --luacheck: ignore 131/all_invites
	local audits, err = read_audits();
	if not audits then
		return nil, err;
	end
	for token, record in pairs(host_view:get(nil) or {}) do
		if type(record) == "table" and not audits[token] then
			audits[token] = new_audit(record);
		end
	end
	for username in host_view:users() do
		if username ~= "" then
			for token, expires in pairs(host_view:get(username) or {}) do
				if not audits[token] and type(expires) == "number" then
					audits[token] = { kind = "contact"; creator = username .. "@" .. module.host; jid = username .. "@" .. module.host;
						expires = expires; uses = {} };
				end
			end
		end
	end
	local list = {};
	for token, audit in pairs(audits) do
		if type(audit) == "table" and type(audit.uses) == "table" then
			local life = lifecycle(token, audit);
			list[#list + 1] = { token = token; audit = audit; state = life.state; uses_left = life.uses_left };
		end
	end
	table.sort(list, function (a, b)
		return (a.audit.expires or 0) < (b.audit.expires or 0);
	end);
	return list;
end

-- Pending invites, optionally of one kind and one creator, soonest expiry first.
function list_pending(kind, creator) --luacheck: ignore 131/list_pending
	local all, err = all_invites();
	if not all then
		return nil, err;
	end
	local list = {};
	for _, item in ipairs(all) do
		if item.state == "pending" and (kind == nil or item.audit.kind == kind) and (creator == nil or item.audit.creator == creator) then
			list[#list + 1] = item;
		end
	end
	return list;
end

-- What one creator made: the creation times of their invites (pending or not, while audit
-- records are kept) and how many are pending. For quotas and "My invites".
function created_by(creator) --luacheck: ignore 131/created_by
	local all, err = all_invites();
	if not all then
		return nil, err;
	end
	local times, mine = {}, {};
	for _, item in ipairs(all) do
		if item.audit.creator == creator then
			times[#times + 1] = item.audit.created_at;
			if item.state == "pending" then
				mine[#mine + 1] = item;
			end
		end
	end
	return times, mine;
end

-- One invite with its audit record and state, or nil and an error code.
function inspect(token) --luacheck: ignore 131/inspect
	if not core.check_token(token) then
		return nil, "token-invalid";
	end
	local audit, err = read_audit(token);
	if audit == nil then
		return nil, err;
	end
	local record = token_storage:get(nil, token);
	if not audit then
		if not record then
			return nil, "token-invalid";
		end
		audit = new_audit(record);
	end
	local life = lifecycle(token, audit);
	return { token = token; audit = audit; state = life.state; uses_left = life.uses_left; record = record };
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
		count("expired", nil, removed);
	end
	purge_audit();
	return removed;
end

if prosody.process_type == "prosody" then
	local purge_interval = module:get_option_number("invites_purge_interval", 3600);
	module:add_timer(module:get_option_number("invites_purge_delay", 60), function ()
		purge_expired();
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
	local audit = read_audit(invite.token);
	if audit then
		for i = #audit.uses, 1, -1 do
			local use = audit.uses[i];
			if use.account == account and use.rooms == nil then
				use.rooms = {};
				for _, result in ipairs(results) do
					use.rooms[result.jid] = result.outcome;
				end
				local ok, err = audit_store:set(invite.token, audit);
				if not ok then
					module:log("warn", "Failed to note the group chats of a use in its audit record: %s", err);
				end
				break;
			end
		end
	end
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

--- Operator commands: the admin shell's `invite` section and prosodyctl (invites_admin.lib.lua)
local admin = module:require "invites_admin";
admin.register_shell();

local function usage_error(verb, ...)
	io.stderr:write("prosodyctl mod_invites ", verb, ": ", ...);
	io.stderr:write("\n");
	return 2;
end

-- prosodyctl loads this module on "*": point it at HOST and its storage.
local function switch_host(host)
	require "core.storagemanager".initialize_host(host);
	module.host = host; --luacheck: ignore 122/module
	invites = new_core(host);
	open_storage();
end

local offline_verbs = { list = true; show = true; delete = true; revoke_by = true };

--- prosodyctl mod_invites generate HOST [--reset USER] [--admin] [--role ROLE]... [--group ID]... [--room JID]... [--uses N] [--expires-after PERIOD]
--- prosodyctl mod_invites list HOST [--kind KIND] [--creator JID] | show HOST TOKEN | delete HOST TOKEN | revoke_by HOST CREATOR
function module.command(arg)
	local verb = arg[1];
	if offline_verbs[verb] then
		local host = arg[2];
		if not (host and prosody.hosts[host]) then
			return usage_error(verb, "host ", tostring(host), " is not defined in the configuration");
		end
		switch_host(host);
		return admin.command(_ENV, verb, { table.unpack(arg, 2) });
	end
	if verb ~= "generate" then
		io.stderr:write("usage: prosodyctl mod_invites generate|list|show|delete|revoke_by HOST [options] (see generate --help)\n");
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

	switch_host(host);

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
		invite, create_err = create_account_reset(reset_username, nil, request.expires_after, "prosodyctl");
	else
		local room_list = request.rooms[1] and request.rooms or nil;
		local room_message;
		invite, create_err, room_message = create_account(nil, { roles = admin.stored_roles(request.roles); groups = request.groups;
			max_uses = request.uses; rooms = room_list }, request.expires_after, "prosodyctl");
		if room_message then
			io.stderr:write("prosodyctl mod_invites generate: ", room_message, "\n");
			return 2;
		elseif invite and room_list then
			io.stderr:write("Note: the group chats are checked when the invite is used (prosodyctl cannot see rooms)\n");
		end
	end
	if not invite then
		io.stderr:write("prosodyctl mod_invites generate: could not create the invite: ", tostring(create_err), "\n");
		return 1;
	end
	print(invite.landing_page or invite.uri);
	return 0;
end
