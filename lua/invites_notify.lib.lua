-- Telling the inviter (README "Telling people"): when an invite is used — an account registered
-- with it, or a contact invite was accepted — its creator, when that is a local account, gets a
-- chat message from the host naming the new contact and the group chats they joined, in the
-- creator's language where known. Who is told and the text are the core's (core.notify).
-- Loaded by mod_invites (module:require), in its environment; needs its inspect().
local st = require "util.stanza";
local id = require "util.id";
local jid_split = require "util.jid".split;
-- Required when used (the busted specs run without it).
local usermanager = setmetatable({}, { __index = function (_, k) return require "core.usermanager"[k]; end });

local core = module:require "invites_native";

local NS = "urn:x-prosody-invites:notify";

local enabled = module:get_option_boolean("invites_notify_inviter", true);
local default_language = module:get_option_string("invites_notify_language", "en");

-- The language of the session an account last created an invite from, for when it is offline:
-- { lang = TAG } per username. Written at creation only (never on the registration path).
local languages = module:open_store("invites_notify");
local known_language = {}; -- username → what the store holds, so it is written when it changes

-- A session's language: the xml:lang of its initial presence (its stream's language).
module:hook("presence/initial", function (event)
	local lang = event.stanza.attr["xml:lang"];
	if type(lang) == "string" and lang ~= "" then
		event.origin.invites_lang = lang;
	end
end);

local function session_language(username)
	local user = prosody.hosts[module.host].sessions[username];
	for _, session in pairs(user and user.sessions or {}) do
		if session.invites_lang then
			return session.invites_lang;
		end
	end
end

-- An invite made from a session (ad-hoc commands name it in additional_data.source): remember
-- that session's language for its account.
module:hook("invite-created", function (invite)
	local source = type(invite.additional_data) == "table" and invite.additional_data.source;
	local session = type(source) == "string" and prosody.full_sessions and prosody.full_sessions[source];
	local lang = session and session.host == module.host and session.invites_lang;
	if not lang or known_language[session.username] == lang then
		return;
	end
	local ok, err = languages:set(session.username, { lang = lang });
	if ok then
		known_language[session.username] = lang;
	else
		module:log("warn", "Failed to store the language of %s: %s", session.username, err);
	end
end);

local function stored_language(username)
	if known_language[username] == nil then
		local record = languages:get(username);
		known_language[username] = type(record) == "table" and type(record.lang) == "string" and record.lang or false;
	end
	return known_language[username] or nil;
end

-- Tells the creator of a used invite, if there is someone to tell.
local function tell(use)
	local creator = use.creator;
	if type(creator) ~= "string" then
		return;
	end
	local node, host = jid_split(creator);
	local recipient, why = core.notify.recipient({
		enabled = enabled;
		host = module.host;
		creator = creator;
		how = use.how;
		account = use.account;
		creator_exists = node ~= nil and host == module.host and usermanager.user_exists(node, host);
	});
	if not recipient then
		module:log("debug", "Not telling the creator of invite %s… about %s: %s", tostring(use.invite.token):sub(1, 6), use.account, why);
		return;
	end
	local candidates = {}; -- most telling first: an online session, what was stored, the default
	for _, lang in ipairs({ session_language(node) or false, stored_language(node) or false, default_language }) do
		if lang then
			candidates[#candidates + 1] = lang;
		end
	end
	local text, lang = core.notify.message(candidates, use.how, use.account, use.rooms);
	local event = { invite = use.invite; creator = recipient; account = use.account; how = use.how; rooms = use.rooms;
		lang = lang; text = text };
	-- Other modules may change event.text (and event.lang), or return true to send nothing.
	if module:fire_event("invite-notify-inviter", event) then
		return;
	end
	local message = st.message({ from = module.host; to = recipient; type = "chat"; id = id.medium(); ["xml:lang"] = event.lang })
		:tag("body"):text(event.text):up()
		:tag("invite-used", { xmlns = NS; jid = use.account; how = use.how }):up()
		:tag("store", { xmlns = "urn:xmpp:hints" }):up();
	module:log("info", "Telling %s that %s used their invite", recipient, use.account);
	module:send(message);
end

-- Uses waiting for their group chats: "token\0account" → use. Told after the registration or
-- approval is done (a timer), never on its path.
local waiting = {};

local function key(invite, account)
	return tostring(invite.token) .. "\0" .. tostring(account);
end

local function later(use, delay)
	module:add_timer(delay, function ()
		local k = key(use.invite, use.account);
		if waiting[k] == use then
			waiting[k] = nil;
			local ok, err = pcall(tell, use);
			if not ok then
				module:log("error", "Failed to tell the creator of an invite: %s", tostring(err));
			end
		end
	end);
end

module:hook("invite-used", function (event)
	if not enabled or event.how == "password-reset" then
		return;
	end
	local use = { invite = event.invite; account = event.username; how = event.how; creator = event.creator };
	local data = event.invite.additional_data;
	waiting[key(use.invite, use.account)] = use;
	-- With group chats, told when they are applied (invite-rooms-applied); at the latest after 30 s.
	later(use, type(data) == "table" and data.rooms ~= nil and 30 or 0);
end);

module:hook("invite-rooms-applied", function (event)
	local use = waiting[key(event.invite, event.account)];
	if use then
		use.rooms = event.results;
		local told = { invite = use.invite; account = use.account; how = use.how; creator = use.creator; rooms = use.rooms };
		waiting[key(use.invite, use.account)] = told;
		later(told, 0);
	end
end);
