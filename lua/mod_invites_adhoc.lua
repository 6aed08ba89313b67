-- XEP-0401: Ad-hoc Account Invitation Generation (version 0.6.0), over XEP-0050 ad-hoc commands.
-- Drop-in replacement for Prosody's mod_invites_adhoc: same module name, same options.
--
--   urn:xmpp:invite#invite          "Create new contact invite"     local users (admins only when
--                                                                    allow_contact_invites = false)
--   urn:xmpp:invite#create-account  "Create new account invite"     admins, roles in invites_account_roles
--   urn:xmpp:invite#create-reset    "Create password reset invite"  admins (also answered at Prosody
--                                                                    13's xmpp:prosody.im/mod_invites_adhoc#password-reset)
--
-- Every command completes with a `result` form of FORM_TYPE urn:xmpp:invite#invitation (`uri`,
-- `landing-url` when there is a landing page, `expire`); failures are command errors. The rules
-- (who may do what, when `ibr=y` is a promise we can keep, what a form may ask for) are in the
-- native core.
local dataforms = require "util.dataforms";
local jid_bare = require "util.jid".bare;
local jid_split = require "util.jid".split;
local usermanager = require "core.usermanager";

local core = module:require "invites_native";
local codes = core.codes;
local adhoc_lib = module:require "adhoc";

-- COMPAT: prosodyctl may load modules; there is nothing for it here.
if prosody.process_type ~= "prosody" and not prosody.shutdown then
	return;
end

local adhoc = core.adhoc;
local ns = core.ns;

local function option_list(name)
	local list = {};
	for item in module:get_option_set(name, {}):items() do
		list[#list + 1] = item;
	end
	return list;
end

local allow_user_invites = module:get_option_boolean("allow_user_invites", false);
local allow_roles = option_list("allow_user_invites_by_roles");
local deny_roles = option_list("deny_user_invites_by_roles");
local account_roles = option_list("invites_account_roles");

local policy = adhoc.policy({
	allow_user_invites = allow_user_invites;
	-- Keep the contact command available to all local users; allow_user_invites decides
	-- whether their invites also allow registering here.
	allow_contact_invites = module:get_option_boolean("allow_contact_invites", true);
	allow_user_invites_by_roles = allow_roles;
	deny_user_invites_by_roles = deny_roles;
	invites_account_roles = account_roles;
});

local invites = module:depends("invites");
module:depends("adhoc");

-- Prosody 13 decides with its permission framework; 0.12 has role sets and is_admin.
local has_permissions = module.may ~= nil and usermanager.get_user_role ~= nil;

if has_permissions then
	-- Roles named in the options get these permissions by default; the operator's own
	-- add_permissions / remove_permissions (applied first) win over them.
	local function set_default(role, permission, allow)
		local authz = prosody.hosts[module.host].authz;
		local ok, _, why = pcall(authz.add_default_permission, role, module.name .. permission, allow);
		if not ok or why == "no-such-role" then
			module:log("warn", "Cannot set %s%s for role %s by default (%s); declare the role in custom_roles", module.name,
				permission, role, tostring(why));
		end
	end
	set_default(allow_user_invites and "prosody:registered" or "prosody:admin", ":invite-users", true);
	set_default("prosody:admin", ":create-account", true);
	set_default("prosody:admin", ":manage", true); -- lists and revokes anyone's invites, no quota
	local allowed = {};
	for _, role in ipairs(allow_roles) do
		allowed[role] = true;
		set_default(role, ":invite-users", true);
	end
	for _, role in ipairs(account_roles) do
		set_default(role, ":create-account", true);
	end
	-- An explicit "no" on the role itself wins over what it inherits (util.roles).
	for _, role in ipairs(deny_roles) do
		if not allowed[role] then
			set_default(role, ":invite-users", false);
		end
	end
end

local function may(permission, context)
	local ok, allowed = pcall(module.may, module, permission, context);
	if not ok then
		module:log("warn", "Permission check %s failed: %s", permission, tostring(allowed));
		return false;
	end
	return allowed == true;
end

-- What the core needs to know about whoever runs a command. `context` is an event or the
-- adhoc data (for module:may), the JID is the stanza's sender.
local function requester_of(from, context)
	local bare = jid_bare(from);
	local node, host = jid_split(bare);
	local requester = { ["local"] = node ~= nil and host == module.host };
	if has_permissions then
		context = context and context.origin and context or bare;
		requester.permissions = {
			invite_users = may(":invite-users", context);
			create_accounts = may(":create-account", context);
		};
	else
		requester.admin = usermanager.is_admin(bare, module.host);
		requester.roles = usermanager.get_roles and usermanager.get_roles(bare, module.host) or nil;
	end
	return requester;
end

-- The command error for a failure's code (and its text, shown for codes that carry one).
local function command_error(code, text)
	local err = core.stanza_error(code, text, module.host);
	err.message = err.text; -- adhoc libraries older than util.error-style error tables read this
	return err;
end

local function failed(code, text)
	local err = command_error(code, text);
	module:log(err.condition == "internal-server-error" and "warn" or "debug", "Invite command failed: %s (%s)", err.text,
		tostring(code));
	return { status = "error"; error = err };
end

local function bad_action()
	local err = command_error(codes.bad_request, "This command does not support that action");
	-- XEP-0050 §4.6: the specific condition next to bad-request.
	err.extra = { namespace = ns.commands; condition = "bad-action" };
	return { status = "error"; error = err };
end

local function invitation_result(invite)
	local layout = dataforms.new(adhoc.invitation_fields(invite.uri, invite.landing_page, invite.expires));
	layout.title = adhoc.invitation_title;
	return { status = "completed"; result = { layout = layout } };
end

-- Where a command is in its exchange: "cancel", "form" (show the form), or "submit" (act now,
-- with the submitted form when there is one).
local function stage(data)
	local form = data.form;
	if data.action == "cancel" or (form and form.attr.type == "cancel") then
		return "cancel";
	elseif form or data.action == "complete" then
		return "submit";
	elseif data.action == "execute" then
		return "form";
	end
	return nil;
end

-- Admins (on 13: holders of invites_adhoc:manage) see and revoke every invite and have no quota.
local function is_manager(data)
	if has_permissions then
		return may(":manage", data);
	end
	return usermanager.is_admin(jid_bare(data.from), module.host) == true;
end

-- invites_user_quota = { count = 5, period = "1 week" } and invites_user_max_pending = N, for
-- everyone else: nil when the requester may create another invite, else the command error.
local quota;
do
	local configured = module:get_option("invites_user_quota");
	if type(configured) == "table" and math.type(configured.count) == "integer" then
		local period, _, why = core.option_period(configured.period or "1 week");
		if period then
			quota = { count = configured.count; period = period; period_text = tostring(configured.period or "1 week") };
		else
			module:log("error", "Ignoring invites_user_quota: %s", why);
		end
	elseif configured ~= nil then
		module:log("error", "Ignoring invites_user_quota: expected { count = N, period = \"1 week\" }");
	end
end
local max_pending = module:get_option_number("invites_user_max_pending");

local function over_quota(data)
	if (quota == nil and max_pending == nil) or is_manager(data) then
		return nil;
	end
	local created, pending = invites.created_by(jid_bare(data.from));
	if not created then
		return failed(pending);
	end
	local ok, code, text = core.quota_check(created, #pending, quota, max_pending, os.time());
	if not ok then
		return failed(code, text);
	end
end

local function form_errors(errors)
	local lines = {};
	for field, message in pairs(errors) do
		lines[#lines + 1] = field .. ": " .. message;
	end
	table.sort(lines);
	return table.concat(lines, "; ");
end

-- Commands of one form: the form first, then its submitted fields. Returns the fields, or nil and
-- the response to give now (canceled, the form, or an error; `required` says what is missing).
local function form_step(data, form, required)
	local step = stage(data);
	if step == "cancel" then
		return nil, { status = "canceled" };
	elseif step == "form" then
		return nil, { status = "executing"; actions = { "complete", default = "complete" }; form = form };
	elseif step ~= "submit" then
		return nil, bad_action();
	elseif not data.form then
		return nil, failed(codes.bad_request, required);
	end
	local fields, errors = form:data(data.form);
	if errors then
		return nil, failed(codes.bad_request, form_errors(errors));
	end
	return fields;
end

--- Create new contact invite

-- A contact invite of the requester (carrying `rooms`, if any), as far as the policy and the
-- quota allow: the invite and whether it allows registration, or nil and the command's response.
local function new_contact_invite(data, rooms)
	local allow_registration, code, text = policy:contact_invite(requester_of(data.from, data), invites.registration_possible());
	if allow_registration == nil then
		return nil, failed(code, text);
	end
	local refused = over_quota(data);
	if refused then
		return nil, refused;
	end
	local invite, create_err, detail = invites.create_contact(jid_split(data.from), allow_registration,
		{ source = data.from; rooms = rooms });
	if not invite then
		return nil, failed(create_err, detail);
	end
	return invite, allow_registration;
end

local function contact_invite(_, data)
	local invite, allow_registration_or_response = new_contact_invite(data);
	if not invite then
		return allow_registration_or_response;
	end
	module:log("info", "Created contact invite for %s (allows registration: %s)", jid_bare(data.from),
		tostring(allow_registration_or_response));
	return invitation_result(invite);
end

module:provides("adhoc", adhoc_lib.new("Create new contact invite", ns.invite_command_contact, contact_invite,
	policy:contact_command_access()));

--- Invite someone to group chats (ours: a contact invite carrying rooms)

local rooms_form = dataforms.new({
	title = "Invite someone to group chats";
	instructions = "The invitee becomes your contact and a member of these group chats.";
	{ name = "rooms"; type = "jid-multi"; label = "Group chats to join"; required = true };
});

local function rooms_invite(_, data)
	local fields, response = form_step(data, rooms_form, "Name at least one group chat");
	if not fields then
		return response;
	end
	local invite, refusal = new_contact_invite(data, fields.rooms);
	if not invite then
		return refusal;
	end
	module:log("info", "Created group chat invite for %s (%d group chats)", jid_bare(data.from), #fields.rooms);
	return invitation_result(invite);
end

module:provides("adhoc", adhoc_lib.new("Invite someone to group chats", ns.rooms_command, rooms_invite,
	policy:contact_command_access()));

--- Create new account invite (two steps, XEP-0401 0.6.0)

local account_fields = {
	title = "Create an account invite";
	instructions = "Optionally reserve a username for the new account, and choose whether it becomes your contact.";
	{ name = "username"; type = "text-single"; label = "Username"; desc = "Leave empty to let the invitee choose"; };
	{ name = "roster-subscription"; type = "boolean"; label = "Add the new account to my contacts"; value = false; };
	-- Ours (XEP-0401 lets servers extend the form): the new account joins these rooms.
	{ name = "rooms"; var = ns.rooms_field; type = "jid-multi"; label = "Group chats to join";
		desc = "Addresses of group chats on this server; leave empty for none" };
};
local account_form = dataforms.new(account_fields);
-- Admins may also let one invite create several accounts.
local manager_account_fields = {};
for k, v in pairs(account_fields) do
	manager_account_fields[k] = v;
end
manager_account_fields[#manager_account_fields + 1] = {
	name = "uses"; type = "text-single"; datatype = "xs:integer"; label = "Accounts it may create";
	desc = "Leave empty for one";
};
local manager_account_form = dataforms.new(manager_account_fields);

local function trimmed(s)
	return type(s) == "string" and s:match("^%s*(.-)%s*$") or nil;
end

local function account_invite(_, data)
	local step = stage(data);
	if step == "cancel" then
		return { status = "canceled" };
	end
	local form = is_manager(data) and manager_account_form or account_form;
	if step == "form" then
		return { status = "executing"; actions = { "complete", default = "complete" }; form = form };
	elseif step ~= "submit" then
		return bad_action();
	end

	local fields = {};
	if data.form then
		local errors;
		fields, errors = form:data(data.form);
		if errors then
			return failed(codes.bad_request, form_errors(errors));
		end
	end
	local max_uses;
	local uses = fields.uses ~= nil and trimmed(tostring(fields.uses)) or ""; -- xs:integer may come as a number
	if uses ~= "" then
		local code, text;
		max_uses, code, text = core.parse_uses(uses);
		if not max_uses then
			return failed(code, text);
		end
	end
	local refused = over_quota(data);
	if refused then
		return refused;
	end
	local raw = trimmed(fields.username);
	local username, name_code, name_text = adhoc.requested_username(raw, invites.prep_username(raw, true));
	if username == nil then
		return failed(name_code, name_text);
	end
	local facts = {};
	if username then
		facts.exists = usermanager.user_exists(username, module.host);
		local reserved_by, reservation_err = invites.reserved_by(username);
		if reservation_err then
			return failed(reservation_err);
		end
		facts.reserved = reserved_by ~= nil;
	end
	local requester = requester_of(data.from, data);
	local plan, plan_code, plan_text = adhoc.account_invite(username, facts, fields["roster-subscription"] == true,
		requester["local"]);
	if not plan then
		return failed(plan_code, plan_text);
	end

	local additional_data = { source = data.from; max_uses = max_uses };
	if type(fields.rooms) == "table" and fields.rooms[1] then
		additional_data.rooms = fields.rooms;
	end
	if plan.subscribe then
		-- Read back by mod_invites' get() as the invite's inviter, whom registration befriends.
		additional_data.roster_subscription = jid_bare(data.from);
	end
	local invite, create_err, room_message = invites.create_account(plan.username, additional_data);
	if not invite then
		return failed(create_err, room_message);
	end
	module:log("info", "Created account invite for %s (username: %s, subscription: %s)", jid_bare(data.from),
		plan.username or "any", tostring(plan.subscribe));
	return invitation_result(invite);
end

local account_command = adhoc_lib.new("Create new account invite", ns.invite_command_account, account_invite, "admin");
module:provides("adhoc", account_command);

-- mod_adhoc offers the command to admins. Users granted account invites by invites_account_roles
-- (or, on Prosody 13, by the mod_invites_adhoc:create-account permission) get it here.
local function may_create_accounts(event)
	return policy:may_create_accounts(requester_of(event.stanza.attr.from, event));
end

module:hook("host-disco-items-node", function (event)
	if event.node ~= ns.commands or not may_create_accounts(event) then
		return;
	end
	-- The reply is positioned inside its <query/>; look there for mod_adhoc's items.
	local query = event.reply:get_child("query", "http://jabber.org/protocol/disco#items") or event.reply;
	for item in query:childtags("item") do
		if item.attr.node == ns.invite_command_account then
			return; -- listed by mod_adhoc already
		end
	end
	event.reply:tag("item", { name = account_command.name; node = account_command.node; jid = module.host }):up();
	event.exists = true;
end, -1);

module:hook("host-disco-info-node", function (event)
	if event.node ~= ns.invite_command_account or not may_create_accounts(event) then
		return;
	end
	event.reply:tag("identity", { name = account_command.name; category = "automation"; type = "command-node" }):up()
		:tag("feature", { var = ns.commands }):up()
		:tag("feature", { var = ns.data_forms }):up();
	event.origin.send(event.reply);
	return true;
end, 1);


--- Create password reset invite (admins)

local reset_form = dataforms.new({
	title = "Create a password reset invite";
	{ name = "accountjid"; type = "jid-single"; label = "Account"; required = true; };
});

local function reset_invite(_, data)
	local fields, response = form_step(data, reset_form, "An account is required");
	if not fields then
		return response;
	end
	local username, code, text = adhoc.reset_account(fields.accountjid, module.host);
	if not username then
		return failed(code, text);
	end
	if not usermanager.user_exists(username, module.host) then
		return failed(codes.unknown_account);
	end
	local invite, create_err = invites.create_account_reset(username, { source = data.from });
	if not invite then
		return failed(create_err);
	end
	module:log("info", "Created password reset invite for %s@%s", username, module.host);
	return invitation_result(invite);
end

local reset_command = adhoc_lib.new("Create password reset invite", ns.invite_command_reset, reset_invite, "admin");
module:provides("adhoc", reset_command);

-- Prosody 13's stock node for the same command, for clients and scripts that use it (answered,
-- not listed twice).
local prosody_reset_command = adhoc_lib.new(reset_command.name, ns.prosody_reset_command, reset_invite, "admin");

local function may_reset(event)
	if has_permissions then
		return may("adhoc:" .. ns.prosody_reset_command, event);
	end
	return usermanager.is_admin(jid_bare(event.stanza.attr.from), module.host);
end

-- Commands mod_adhoc would not run for this requester: account invites for users granted them
-- by role, and the reset command under Prosody 13's node. Anything else is left to mod_adhoc.
module:hook("iq-set/host/" .. ns.commands .. ":command", function (event)
	local node = event.stanza.tags[1].attr.node;
	local command;
	if node == ns.invite_command_account and may_create_accounts(event) then
		command = account_command;
	elseif node == ns.prosody_reset_command and may_reset(event) then
		command = prosody_reset_command;
	else
		return;
	end
	return adhoc_lib.handle_cmd(command, event.origin, event.stanza);
end, 501);

--- Lifecycle commands (list, revoke, my invites): invites_adhoc_lifecycle.lib.lua
module:require "invites_adhoc_lifecycle" {
	invites = invites; adhoc_lib = adhoc_lib; ns = ns;
	failed = failed; stage = stage; form_step = form_step; trimmed = trimmed;
	is_manager = is_manager; requester_of = requester_of;
};

--- For mod_invites_web: the same decisions for an account logged in on the web (a bare JID of
-- this host), through the same functions as the commands (policy, quota, refusal texts).

-- A contact invite as "Create new contact invite" makes it: the invite and whether it allows
-- registration, or nil and the refusal's text.
function web_contact_invite(jid) --luacheck: ignore 131/web_contact_invite
	local invite, allow_registration_or_response = new_contact_invite({ from = jid; actor_jid = jid });
	if not invite then
		local err = allow_registration_or_response.error;
		return nil, err and err.text or "internal-server-error";
	end
	return invite, allow_registration_or_response;
end

-- Whether the account sees and revokes every invite (admins; on 13 invites_adhoc:manage).
function web_is_manager(jid) --luacheck: ignore 131/web_is_manager
	return is_manager({ from = jid; actor_jid = jid });
end
