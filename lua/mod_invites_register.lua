-- XEP-0401 / XEP-0445: invite-based in-band registration; XEP-0379: pre-authenticated roster subscription.
-- Drop-in replacement for Prosody's mod_invites_register: same events, options and exports; the rules
-- (who may register what, single-use claims, pre-auth throttling) are decided in Rust.
local st = require "util.stanza";
local jid_bare = require "util.jid".bare;
local jid_split = require "util.jid".split;
local rostermanager = require "core.rostermanager";
local usermanager = require "core.usermanager";

local core = module:require "invites_native";
local codes = core.codes;
local ns = core.ns;
local now = os.time;

local require_encryption = module:get_option_boolean("c2s_require_encryption",
	module:get_option_boolean("require_encryption", true));
local invite_only = module:get_option_boolean("registration_invite_only", true);

-- Pre-auth throttle. Like Prosody's own registration limits, allowlisted addresses are exempt.
-- Options left unset are passed as nil: the defaults (10 failures in 600 s, IPv6 per /64,
-- loopback exempt) are the core's (throttle.rs).
local function first_option(...)
	for _, name in ipairs({ ... }) do
		local value = module:get_option(name);
		if value ~= nil then
			return value;
		end
	end
end

local function address_list(value)
	if type(value) == "string" then
		return { value };
	elseif type(value) ~= "table" then
		return nil;
	end
	local list = {};
	for k, v in pairs(value) do
		-- Arrays, and sets as util.set or config `set {}` builds them.
		if type(k) == "number" and type(v) == "string" then
			list[#list + 1] = v;
		elseif type(k) == "string" and v == true then
			list[#list + 1] = k;
		end
	end
	return list;
end

local function window_option()
	local value = module:get_option("invites_preauth_failure_window");
	if value == nil then
		return nil;
	end
	local seconds, _, why = core.parse_period(value);
	if not seconds then
		module:log("error", "Ignoring invalid invites_preauth_failure_window: %s", why);
	end
	return seconds;
end

local invites, roles_store;
if prosody.process_type == "prosody" then
	invites = module:depends("invites");
	if invite_only then
		module:depends("register_ibr");
	end
	roles_store = module:open_store("roles");
end

-- Names compared in their prepared form (mod_invites' prep_username); one that does not prepare
-- stays as it is, so it can match no registration (a restriction is never lost).
local function comparable(name)
	return invites.prep_username(name) or name;
end

local state = core.new_registration(module.host, function (level, message)
	module:log(level, "%s", message);
end, {
	max_failures = module:get_option_number("invites_preauth_max_failures");
	failure_window = window_option();
	ipv6_prefix = module:get_option_number("invites_preauth_ipv6_prefix");
	exempt = address_list(first_option("invites_preauth_exempt", "registration_allowlist", "registration_whitelist"));
	prep = invites and invites.prep_username;
});

local function event_invite(event)
	return event.validated_invite or (event.session and event.session.validated_invite);
end

-- Claims are held per stream (or per invite object for web registrations that have no stream).
local holder_ids = setmetatable({}, { __mode = "k" });
local last_holder = 0;
local function holder_of(owner, create)
	if owner == nil then
		return nil;
	end
	local id = holder_ids[owner];
	if not id and create then
		last_holder = last_holder + 1;
		id = last_holder;
		holder_ids[owner] = id;
	end
	return id;
end

local function send_error(origin, stanza, err)
	origin.send(st.error_reply(stanza, err.type, err.condition, err.text));
end

-- The stanza error for a refusal's code (the core maps codes to errors).
local function stanza_error(code)
	return core.stanza_error(code, nil, module.host);
end

local legacy_feature = st.stanza("register", { xmlns = ns.invite });
local ibr_token_feature = st.stanza("register", { xmlns = ns.ibr_token });
module:hook("stream-features", function (event)
	local session = event.origin;
	if not core.advertise_features(tostring(session.type), not not session.secure, require_encryption) then
		return;
	end
	event.features:add_child(legacy_feature);
	event.features:add_child(ibr_token_feature);
end);

-- Refused pre-auth attempts, by error condition (statistics: stats:show(), mod_http_openmetrics).
local refused_counter = prosody.process_type == "prosody"
	and module:metric("counter", "preauth_refused", "", "Refused invite pre-auth attempts", { "condition" });

-- XEP-0445: the client presents its token before registering
module:hook("stanza/iq/" .. ns.pars .. ":preauth", function (event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s_unauthed" then
		return;
	end
	local ip = origin.ip;
	local token = stanza.tags[1].attr.token;
	local proceed, code, reason = state:preauth(ip, stanza.attr.type, token, now());
	if proceed then
		local invite, err = invites.get(token);
		if invite then
			origin.validated_invite = invite;
			origin.send(st.reply(stanza));
			return true;
		end
		code, reason = select(2, state:preauth_failed(ip, err, now()));
	end
	local refusal = stanza_error(code);
	if refused_counter then
		refused_counter:with_labels(refusal.condition):add(1);
	end
	-- While throttled, every attempt would be logged; once is enough.
	local level = code == codes.throttled and "debug" or "info";
	module:log(level, "Refused invite pre-auth from %s: %s", ip or "unknown address", reason);
	send_error(origin, stanza, refusal);
	return true;
end);

-- Fired by mod_register_ibr (invite on the session) and by web registration modules (invite on
-- the event). Decides whether the registration may go ahead with the invite it presents.
module:hook("user-registering", function (event)
	if event.allowed == false then
		return; -- refused already
	end
	local username = comparable(event.username) or "";
	local invite = event_invite(event);
	local reserved_by, reservation_err = invites.reserved_by(username);
	local request = {
		invite_only = invite_only;
		username = username;
		account_exists = username ~= "" and usermanager.user_exists(username, module.host) or false;
		reserved_by = reserved_by or (reservation_err and false); -- false: could not be read
		invite = invite;
		standing = invite and (invites.standing(invite) or false); -- false: could not be read
	};
	local allowed, code, reason = state:registering(request, holder_of(event.session or invite, true) or 0, now());
	if not allowed then
		module:log("info", "Refused registration of %s from %s: %s", username, event.ip or "unknown address", reason);
		local refusal = stanza_error(code);
		event.allowed = false;
		event.reason = refusal.text;
		event.error_type = refusal.type;
		event.error_condition = refusal.condition;
		return;
	end
	if allowed ~= true then
		event.allow_reset = allowed; -- the account whose password the invite resets
	end
end);

-- Make a *one-way* subscription: user sees when contact is online, not the other way round.
function subscribe(host, user_username, contact_username) --luacheck: ignore 131/subscribe
	local user_jid = user_username .. "@" .. host;
	local contact_jid = contact_username .. "@" .. host;
	rostermanager.set_contact_pending_out(user_username, host, contact_jid);
	rostermanager.set_contact_pending_in(contact_username, host, user_jid);
	rostermanager.subscribed(contact_username, host, user_jid);
	rostermanager.process_inbound_subscription_approval(user_username, host, contact_jid);
end

-- Make a mutual subscription between two local users.
function subscribe_both(host, user1, user2) --luacheck: ignore 131/subscribe_both
	subscribe(host, user1, user2);
	subscribe(host, user2, user1);
end

-- Uses whose consume failed after a registration, by token: their claims stay (nobody registers
-- with them) and the consume is retried when the stream ends and by the timer.
local owed = {};

-- Records the use of `invite` by `account` as `plan` says, made from `standing` (mod_invites'
-- redeem: one write in the per-invite layout; a failure is logged there), and settles its claim:
-- dropped once stored, kept while the use is owed. Without a plan (a retry, or storage that could
-- not tell what the plan was made from) redeem reads and plans again.
local function redeem_claimed(invite, account, how, plan, standing)
	local token = tostring(invite.token);
	if plan and plan.owed then
		plan, standing = nil, nil;
	end
	local ok = invites.redeem(invite, account, how, plan, standing);
	state:consumed(token, not not ok, now());
	owed[token] = not ok and { invite = invite; account = account; how = how } or nil;
	return ok;
end

local function retry_owed()
	for _, use in pairs(owed) do
		redeem_claimed(use.invite, use.account, use.how);
	end
end

-- A reload keeps the owed consumes (and so their claims).
function module.save()
	return { owed = owed };
end

function module.restore(saved)
	for token, use in pairs(type(saved) == "table" and type(saved.owed) == "table" and saved.owed or {}) do
		if type(use) == "table" and type(use.invite) == "table" then
			owed[token] = use;
			state:consumed(token, false, now());
		end
	end
end

local function apply_roles(username, plan)
	local set_user_role = usermanager.set_user_role;
	if not set_user_role then -- Prosody 0.12: a set in the roles store
		local ok, err = roles_store:set(username, plan.roles);
		if not ok then
			module:log("error", "Failed to store roles of %s: %s", username, tostring(err));
		end
		return;
	end
	-- Prosody 13 keeps roles in the authorization provider, which raises for unknown roles: grant
	-- those that exist (the first as primary) and never let a role cost the registration.
	local granted = 0;
	for _, role in ipairs(plan.role_list) do
		local exists, known = pcall(usermanager.get_role_by_name, role, module.host); -- raises for unknown roles
		if not (exists and known) then
			module:log("error", "Invite used by %s names role %q, which does not exist on this host; not granted", username, role);
		else
			local grant = granted == 0 and set_user_role or usermanager.add_user_secondary_role;
			local ok, done, err = pcall(grant, username, module.host, role);
			if ok and done then
				granted = granted + 1;
			else
				module:log("error", "Failed to grant role %s to %s: %s", role, username, tostring(ok and err or done));
			end
		end
	end
end

-- What the core plans for a finished registration or reset with `invite`, from what is stored of
-- it now; nil (logged) when this registration may not redeem it.
local function plan_of(event, invite, inviter)
	local standing = invites.standing(invite);
	local plan, _, why = state:registered(invite, holder_of(event.session or invite), {
		username = event.username;
		inviter = inviter;
		inviter_exists = inviter ~= nil and usermanager.user_exists(inviter, module.host) == true;
		standing = standing or false;
	});
	if not plan then
		module:log("debug", "Not redeeming invite for %s: %s", event.username, why);
	end
	return plan, standing;
end

-- Registration done: record the use (consuming the invite when it is its last), befriend the
-- inviter, grant the invite's roles, join its group chats.
module:hook("user-registered", function (event)
	local invite = event_invite(event);
	if not invite then
		return;
	end
	local username = event.username;
	local plan, standing = plan_of(event, invite, comparable(invite.inviter));
	if not plan then
		return;
	end
	redeem_claimed(invite, username .. "@" .. module.host, "registered", plan, standing);
	if plan.befriend then
		module:log("debug", "Creating mutual subscription between %s and %s", plan.befriend, username);
		subscribe_both(module.host, plan.befriend, username);
		rostermanager.roster_push(plan.befriend, module.host, username .. "@" .. module.host);
	end
	if plan.roles then
		apply_roles(username, plan);
	end
	invites.apply_rooms(invite, username .. "@" .. module.host); -- last: after the subscriptions
end);

-- A reset invite changed the password of an existing account.
module:hook("user-password-reset", function (event)
	local invite = event_invite(event);
	if not invite then
		return;
	end
	local plan, standing = plan_of(event, invite, nil);
	if plan then
		redeem_claimed(invite, event.username .. "@" .. module.host, "password-reset", plan, standing);
	end
end);

-- A stream that closes without registering gives its claims back.
module:hook_global("c2s-closed", function (event)
	local id = event.session and holder_ids[event.session];
	if id then
		state:release(id);
		retry_owed();
	end
end);

-- What mod_presence sends when a subscription is approved: the user's current presence, or
-- "unavailable" when no resource is online.
local function send_presence_of(username, contact)
	local user = prosody.hosts[module.host].sessions[username];
	local sent = 0;
	for _, session in pairs(user and user.sessions or {}) do
		if session.presence then
			local presence = st.clone(session.presence);
			presence.attr.from, presence.attr.to = session.full_jid, contact;
			module:send(presence);
			sent = sent + 1;
		end
	end
	if sent == 0 then
		module:send(st.presence({ type = "unavailable", from = username .. "@" .. module.host, to = contact }));
	end
end

-- XEP-0379: a subscription request carrying a contact token of the addressed user is approved
-- on the user's behalf, even while they are offline, and answered with a request back.
module:hook("presence/bare", function (event)
	local stanza = event.stanza;
	local preauth = stanza:get_child("preauth", ns.pars);
	if not preauth then
		return;
	end
	local contact = jid_bare(stanza.attr.from) or "";
	local user_jid = jid_bare(stanza.attr.to) or "";
	local token = core.contact_token(stanza.attr.type, preauth.attr.token, contact, user_jid);
	if not token then
		return;
	end
	local username, host = jid_split(user_jid);
	if not username then
		return;
	end
	local invite, err = invites.get(token, username);
	if not invite then
		-- Unknown to this user: an ordinary subscription request, delivered as it is.
		module:log("debug", "Ignoring contact token for %s: %s", username, err);
		return;
	end
	-- Consume first, so a token approves exactly once.
	if not invites.redeem(invite, contact, "contact-approved") then
		return;
	end
	module:log("debug", "Approving inbound subscription to %s from %s", username, contact);
	if not rostermanager.is_contact_subscribed(username, host, contact) then
		rostermanager.set_contact_pending_in(username, host, contact, stanza);
		if not rostermanager.subscribed(username, host, contact) then
			module:log("warn", "Failed to approve subscription of %s to %s", contact, username);
			return; -- mod_presence delivers it as an ordinary request
		end
	end
	rostermanager.roster_push(username, host, contact);
	-- Answered here rather than by mod_presence: with the user offline it would consult the
	-- contact's in-memory roster, which does not know of the approval yet.
	module:send(st.presence({ type = "subscribed", from = user_jid, to = contact }));
	send_presence_of(username, contact);
	-- The inviter asks back unless subscribed to the contact already or asking already.
	if not rostermanager.is_user_subscribed(username, host, contact)
		and not rostermanager.is_contact_pending_out(username, host, contact) then
		if rostermanager.set_contact_pending_out(username, host, contact) then
			rostermanager.roster_push(username, host, contact);
			module:send(st.presence({ type = "subscribe", from = user_jid, to = contact }));
		else
			module:log("warn", "Failed to request subscription of %s to %s", username, contact);
		end
	end
	invites.apply_rooms(invite, contact); -- after `subscribed`, so the invitation comes from a contact
	return true;
end, 1);

if prosody.process_type == "prosody" then
	module:add_timer(300, function ()
		retry_owed();
		state:tidy(now());
		return 300;
	end);
end
