-- Group chats carried by invites: additional_data.rooms = { { jid = ROOM, autojoin = true }, ... }.
-- Checked when an invite is created, applied when it is used (membership, XEP-0402 bookmark,
-- XEP-0249 invitation, each room on its own), undone when the account is deleted. The rules are
-- in the core (crates/rules/src/rooms.rs); this file gathers the facts and carries out what it decides.
-- Loaded by mod_invites (module:require), in its environment.
local st = require "util.stanza";
local id = require "util.id";
local jid_prep = require "util.jid".prep;
local jid_bare = require "util.jid".bare;
local jid_split = require "util.jid".split;

-- Prosody's managers are required where they are used: they cannot load outside a server
-- (prosodyctl, the busted specs).
local function manager(name)
	return require("core." .. name);
end

local core = module:require "invites_native";
local codes = core.codes;
local ns = core.ns;
local now = os.time;

local rooms = {};

-- The publish options mod_bookmarks uses for the same node.
local bookmark_options = {
	["persist_items"] = true;
	["max_items"] = "max";
	["send_last_published_item"] = "never";
	["access_model"] = "whitelist";
};

local grants_store;
local function grants()
	grants_store = grants_store or module:open_store("invites_room_grants");
	return grants_store;
end

local function invitation_mode()
	local mode, _, why = core.rooms.invitation_mode(module:get_option_string("invites_room_invitation"));
	if not mode then
		module:log("error", "%s; using \"inviter\"", why);
		return "inviter";
	end
	return mode;
end

-- additional_data.rooms read and normalised: the list (possibly empty), or nil, code, message.
function rooms.normalise(list)
	if list == nil then
		return {};
	elseif type(list) ~= "table" then
		return nil, codes.bad_request, "The group chats of an invite must be a list";
	end
	local inputs = {};
	for _, entry in ipairs(list) do
		local given, autojoin = entry, nil;
		if type(entry) == "table" then
			given, autojoin = entry.jid, entry.autojoin;
		end
		if type(autojoin) ~= "boolean" then
			autojoin = nil;
		end
		given = tostring(given or "");
		inputs[#inputs + 1] = { given = given; prepped = jid_prep(given); autojoin = autojoin };
	end
	return core.rooms.normalise(inputs, module:get_option_number("invites_max_rooms", core.rooms.default_max));
end

-- The MUC component serving `host`, looked up at every use (never cached: it may be reloaded).
local function muc_module(host)
	if not host or not (prosody.hosts and prosody.hosts[host]) then
		return nil;
	end
	return manager("modulemanager").get_module(host, "muc");
end

local function is_admin(jid)
	local node, host = jid_split(jid);
	if not node or host ~= module.host then
		return false;
	end
	local usermanager = manager("usermanager");
	if usermanager.get_jid_role then -- Prosody 13 (is_admin is deprecated there)
		local role = usermanager.get_jid_role(jid, host);
		return role ~= nil and (role.name == "prosody:admin" or role.name == "prosody:operator");
	end
	return usermanager.is_admin(jid, host) == true;
end

-- Who names the rooms of an invite: { privileged = true } (admins, the shell, prosodyctl, other
-- modules) or { jid = USER } for an ordinary user, whose XEP-0045 rights are checked.
function rooms.requester(invite_type, inviter, additional_data, creator)
	local source = creator;
	if type(source) ~= "string" then
		source = type(additional_data) == "table" and additional_data.source or nil;
	end
	if type(source) == "string" and source ~= "" then
		if not source:find("@", 1, true) then
			return { privileged = true }; -- "shell", "prosodyctl", "api/token/..."
		end
		local jid = jid_bare(source);
		return is_admin(jid) and { privileged = true } or { jid = jid };
	end
	if invite_type == "roster" and inviter then
		local jid = inviter .. "@" .. module.host;
		return is_admin(jid) and { privileged = true } or { jid = jid };
	end
	return { privileged = true };
end

-- The facts the core checks a room with, and the room object when there is one.
local function room_facts(room_jid, requester)
	local _, host = jid_split(room_jid);
	local facts, who = {}, { privileged = requester.privileged };
	if prosody.process_type ~= "prosody" then
		-- prosodyctl runs outside the server and sees no rooms: only the configuration.
		facts.muc_service = host ~= nil and require "core.configmanager".get(host, "component_module") == "muc";
		return facts, who;
	end
	local mod_muc = muc_module(host);
	if not mod_muc then
		return facts, who;
	end
	local room = mod_muc.get_room_from_jid(room_jid);
	facts.muc_service, facts.checked, facts.exists = true, true, room ~= nil;
	if room then
		facts.destroyed = room._data.destroyed ~= nil and room._data.destroyed ~= false;
		facts.persistent = room:get_persistent() == true;
		facts.members_only = room:get_members_only() == true;
		facts.allow_member_invites = room:get_allow_member_invites() == true;
		if requester.jid then
			who.affiliation = room:get_affiliation(requester.jid);
		end
	end
	return facts, who, room;
end

-- Checks the rooms of a new invite: the normalised list (possibly empty), or nil, code, message.
-- `checked` is "service" when only the MUC service could be checked (prosodyctl).
function rooms.check_new(list, requester)
	local normalised, code, message = rooms.normalise(list);
	if not normalised then
		return nil, code, message;
	end
	local checked = "room";
	for _, entry in ipairs(normalised) do
		local facts, who = room_facts(entry.jid, requester);
		local ok, what, why = core.rooms.check(entry.jid, facts, who); -- what: "room", "service" or the code
		if not ok then
			return nil, what, why;
		end
		if what == "service" then
			checked = what;
		end
	end
	return normalised, nil, checked;
end

-- The inviter of an invite as a bare JID (contact invites; account invites that befriend), or nil.
local function inviter_of(invite)
	local data = type(invite.additional_data) == "table" and invite.additional_data or {};
	local inviter = invite.inviter;
	if not inviter and invite.type == "roster" then
		inviter = jid_split(invite.jid or "");
	end
	if not inviter and type(data.roster_subscription) == "string" then
		inviter = jid_split(data.roster_subscription);
	end
	return inviter and (inviter .. "@" .. module.host) or nil;
end

-- Publishes (or updates) the XEP-0402 bookmark of `room` on a local account's PEP service.
local function publish_bookmark(account, room, entry)
	local username, host = jid_split(account);
	if not username or host ~= module.host then
		return "remote";
	end
	local mod_pep = manager("modulemanager").get_module(module.host, "pep");
	if not mod_pep then
		return "no-pep";
	end
	local service = mod_pep.get_pep_service(username);
	local conference = st.stanza("conference", { xmlns = ns.bookmarks; autojoin = entry.autojoin and "true" or "false" });
	local found, items = service:get_items(ns.bookmarks, account, entry.jid);
	local existing = found and items[entry.jid] and items[entry.jid]:get_child("conference", ns.bookmarks);
	local has_password = false;
	if existing then
		conference.attr.name = existing.attr.name;
		for child in existing:childtags() do
			has_password = has_password or child.name == "password";
			conference:add_child(st.clone(child));
		end
	end
	conference.attr.name = conference.attr.name or room:get_name();
	local password = room:get_password();
	if password and not has_password then
		conference:text_tag("password", password);
	end
	local item = st.stanza("item", { xmlns = ns.pubsub; id = entry.jid }):add_child(conference);
	local ok, err = service:publish(ns.bookmarks, account, entry.jid, item, bookmark_options);
	if not ok and err == "precondition-not-met" then -- a node the client configured otherwise
		ok, err = service:publish(ns.bookmarks, account, entry.jid, item);
	end
	if not ok then
		module:log("warn", "Failed to publish the bookmark of %s for %s: %s", entry.jid, account, tostring(err));
		return "failed";
	end
	return "published";
end

-- Sends the XEP-0249 invitation, from the inviter (when they approved the account's
-- subscription) or the room, as invites_room_invitation says.
local function send_invitation(account, room, entry, inviter)
	local approved = inviter;
	if inviter then
		local inviter_name = jid_split(inviter);
		approved = manager("rostermanager").is_contact_subscribed(inviter_name, module.host, account) and inviter or nil;
	end
	local from = core.rooms.invitation_sender(invitation_mode(), approved, entry.jid);
	if not from then
		return "none";
	end
	module:send(st.message({ from = from; to = account; id = id.medium() })
		:tag("x", {
			xmlns = ns.conference;
			jid = entry.jid;
			reason = core.rooms.invitation_reason(inviter, room:get_name(), entry.jid);
			password = room:get_password();
		}):up());
	return from == entry.jid and "from-room" or "from-inviter";
end

local function record_grant(account, room_jid, token)
	local username, host = jid_split(account);
	if not username or host ~= module.host then
		return; -- only local accounts are deleted here
	end
	local store = grants();
	local record = store:get(username) or {};
	record[room_jid] = { token = token; at = now() };
	local ok, err = store:set(username, record);
	if not ok then
		module:log("error", "Failed to record the membership of %s in %s: %s", account, room_jid, tostring(err));
	end
end

-- One room for one account: the outcome ("granted", "kept-member", "banned", "room-gone", ...).
local function apply_one(entry, account, invite, requester, inviter)
	local facts, who, room = room_facts(entry.jid, requester);
	local ok, code, message = core.rooms.check(entry.jid, facts, who);
	if not ok then
		module:log("info", "Not adding %s to %s: %s", account, entry.jid, message);
		return core.rooms.refused_outcome(code, message), message;
	end
	local step, outcome, welcomes = core.rooms.plan(room:get_affiliation(account));
	if step == "grant" then
		local reason = core.rooms.invitation_reason(inviter, nil, entry.jid);
		local set, err_type, condition = room:set_affiliation(true, account, "member", reason);
		if set then
			record_grant(account, entry.jid, invite.token);
		elseif condition == "not-acceptable" then
			outcome = "kept-owner"; -- 0.12: server admins are owners of every room
		else
			return "failed", ("%s/%s"):format(tostring(err_type), tostring(condition));
		end
	end
	if not welcomes then
		return outcome;
	end
	local published, bookmark = pcall(publish_bookmark, account, room, entry);
	if not published then
		module:log("error", "Bookmark of %s for %s: %s", entry.jid, account, tostring(bookmark));
		bookmark = "failed";
	end
	local sent, invitation = pcall(send_invitation, account, room, entry, inviter);
	if not sent then
		module:log("error", "Invitation to %s for %s: %s", entry.jid, account, tostring(invitation));
		invitation = "failed";
	end
	return outcome, nil, bookmark, invitation;
end

-- Applies the rooms of a used invite to `account` (bare JID), each on its own; fires
-- invite-rooms-applied and returns the per-room results (nil when the invite has no rooms).
function rooms.apply(invite, account)
	local data = type(invite) == "table" and type(invite.additional_data) == "table" and invite.additional_data or {};
	if data.rooms == nil then
		return nil;
	end
	local list, _, message = rooms.normalise(data.rooms);
	if not list then
		module:log("warn", "Ignoring the group chats of invite %s: %s", tostring(invite.token), message);
		return nil;
	end
	if #list == 0 then
		return nil;
	end
	local inviter = inviter_of(invite);
	local requester = rooms.requester(invite.type, inviter and jid_split(inviter), data, nil);
	local results = {};
	for _, entry in ipairs(list) do
		local ok, outcome, detail, bookmark, invitation = pcall(apply_one, entry, account, invite, requester, inviter);
		if not ok then
			module:log("error", "Failed to add %s to %s: %s", account, entry.jid, tostring(outcome));
			outcome, detail = "failed", tostring(outcome);
		end
		results[#results + 1] = { jid = entry.jid; outcome = outcome; detail = detail; bookmark = bookmark; invitation = invitation };
		module:log("info", "Invite %s… for %s: group chat %s %s", tostring(invite.token):sub(1, 6), account, entry.jid, outcome);
	end
	local username, host = jid_split(account);
	module:fire_event("invite-rooms-applied", {
		invite = invite;
		account = account;
		username = host == module.host and username or nil;
		host = module.host;
		results = results;
	});
	return results;
end

-- An account was deleted: remove the memberships this feature granted it that are still plain
-- memberships, so a later account of the same name inherits nothing.
function rooms.account_deleted(username)
	local store = grants();
	local record = store:get(username);
	if type(record) ~= "table" then
		return;
	end
	local account = username .. "@" .. module.host;
	for room_jid in pairs(record) do
		local ok, err = pcall(function ()
			local _, host = jid_split(room_jid);
			local mod_muc = muc_module(host);
			local room = mod_muc and mod_muc.get_room_from_jid(room_jid);
			if room and not room._data.destroyed and core.rooms.remove_on_delete(room:get_affiliation(account)) then
				room:set_affiliation(true, account, nil, "Account deleted");
				module:log("info", "Removed deleted account %s from %s", account, room_jid);
			end
		end);
		if not ok then
			module:log("error", "Failed to remove deleted account %s from %s: %s", account, room_jid, tostring(err));
		end
	end
	local ok, err = store:set(username, nil);
	if not ok then
		module:log("warn", "Failed to forget the group chat memberships of %s: %s", account, tostring(err));
	end
end

return rooms;
