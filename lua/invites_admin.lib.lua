-- The operator's side of mod_invites: the admin shell's `invite` section and `prosodyctl
-- mod_invites ...`, the same verbs on 0.12 and 13. Their names, arguments, flags and usage lines
-- are the core's (core.shell_commands, from SHELL_COMMANDS in crates/rules/src/shell.rs); this
-- file only prints them.
-- Loaded by mod_invites (module:require), in its environment.
local jid_bare = require "util.jid".bare;
local jid_split = require "util.jid".split;

local core = module:require "invites_native";
local codes = core.codes;
local tree = module:require "invites_tree";
local check = module:require "invites_check";

local admin = {};

-- What this release's stock modules expect: 0.12 has the shell's plain `invite` table; 13 (and
-- trunk) has shell-command items. The shape of an invite's roles is the core's (roles.rs).
local major_version = tonumber((prosody.version or ""):match("^(%d+)%."));
local stock_0_12 = major_version ~= nil and major_version < 13;

function admin.stored_roles(list)
	return core.roles.stored(list, prosody.version or "");
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
	local seconds, _, why = core.parse_period(text);
	if not seconds then
		return nil, "--expires-after: " .. why;
	end
	return seconds;
end

local function share(invite, err, message)
	if not invite then
		return nil, message or err;
	end
	return true, invite.landing_page or invite.uri;
end

local function format_time(t)
	return t and os.date("%Y-%m-%d %T", t) or "-";
end

-- What an invite is for, in stock 13's words: long for `show`, short for `list`.
local function describe(kind, jid, reset_account, long)
	local node, host = jid_split(jid or "");
	if kind == "contact" or kind == "account-and-contact" then
		return (long and "Invitation to register and become a contact of " or "Contact with ") .. tostring(jid);
	elseif kind == "reset" then
		return "Password reset for " .. tostring(reset_account or node) .. "@" .. tostring(host);
	elseif node then
		return long and ("Invitation to register on %s with username '%s'"):format(host, node)
			or ("Register on %s with username %s"):format(host, node);
	end
	return (long and "Invitation to register on " or "Register on ") .. tostring(host);
end

local function uses_left_text(uses_left)
	return uses_left and tostring(uses_left) or "unlimited";
end

local verbs = {};

function verbs.create_account(self, mod, opts, user_jid)
	local username = jid_split(user_jid);
	local ttl, err = expires_after(opts);
	if err then
		return nil, err;
	end
	local max_uses;
	if opts.uses ~= nil then
		local _, why;
		max_uses, _, why = core.parse_uses(tostring(opts.uses));
		if not max_uses then
			return nil, why;
		end
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
	return share(mod.create_account(username, {
		roles = admin.stored_roles(roles);
		groups = opts.group or {};
		max_uses = max_uses;
		rooms = opts.room;
	}, ttl, self.source));
end

function verbs.create_reset(self, mod, opts, user_jid)
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
	local invite, create_err = mod.create_account_reset(username, nil, ttl, self.source);
	if not invite then
		return nil, create_err;
	end
	self.session.print(invite.landing_page or invite.uri);
	return true, ("Password reset link for %s valid until %s"):format(user_jid, format_time(invite.expires));
end

function verbs.create_contact(self, mod, opts, user_jid)
	local username = jid_split(user_jid);
	if not username then
		return nil, "Supply the JID of the account you want the recipient to become a contact of";
	end
	local allow, _, flag_why = core.parse_flag(opts.allow_registration);
	if allow == nil then
		return nil, "--allow-registration: " .. flag_why;
	end
	local ttl, err = expires_after(opts);
	if err then
		return nil, err;
	end
	local data = opts.room and { rooms = opts.room } or nil;
	return share(mod.create_contact(username, allow, data, ttl, self.source));
end

function verbs.show(self, mod, _, _, token)
	local found, err = mod.inspect(token);
	if not found then
		return nil, err;
	end
	local audit, record, print = found.audit, found.record, self.session.print;
	local data = record and type(record.additional_data) == "table" and record.additional_data or {};
	print(describe(audit.kind, audit.jid, data.allow_reset, true));
	print("Kind:", audit.kind);
	print("Creator:", audit.creator or "unknown");
	print("State:", found.state);
	print("Created:", format_time(audit.created_at));
	print("Expires:", format_time(audit.expires));
	print("Uses left:", uses_left_text(found.uses_left));
	for _, use in ipairs(audit.uses) do
		print("Used by:", ("%s (%s, %s)"):format(tostring(use.account), tostring(use.how), format_time(use.at)));
		if type(use.rooms) == "table" then
			local outcomes = {};
			for room_jid, outcome in pairs(use.rooms) do
				outcomes[#outcomes + 1] = ("%s %s"):format(room_jid, tostring(outcome));
			end
			table.sort(outcomes);
			print("", "group chats: " .. table.concat(outcomes, ", "));
		end
	end
	if audit.revoked_at then
		print("Revoked:", ("%s by %s"):format(format_time(audit.revoked_at), tostring(audit.revoked_by)));
	end
	if record then
		print("");
		print("XMPP URI:", record.uri);
		if record.landing_page then
			print("Web link:", record.landing_page);
		end
		local list = core.roles.names(data.roles);
		if list[1] then
			print("Role:", list[1]);
		end
		if list[2] then
			print("Secondary roles:", table.concat(list, ", ", 2));
		end
		if type(data.groups) == "table" and data.groups[1] then
			print("Groups:", table.concat(data.groups, ", "));
		end
		for _, room in ipairs(type(data.rooms) == "table" and data.rooms or {}) do
			local room_jid = type(room) == "table" and room.jid or room;
			local autojoin = not (type(room) == "table" and room.autojoin == false);
			print("Group chat:", tostring(room_jid) .. (autojoin and "" or " (no autojoin)"));
		end
		if data.note then
			print("Comment:", tostring(data.note));
		end
	end
	if found.state ~= "pending" then
		return true, "Invitation " .. found.state;
	end
	return true, "Invitation valid";
end

function verbs.delete(self, mod, _, _, token)
	local ok, err, state = mod.delete_account_invite(token, self.source);
	if not ok then
		return nil, core.error_text(err, state);
	end
	return true, "Invitation deleted";
end

local kinds = { account = true; reset = true; contact = true; ["account-and-contact"] = true };

local function pending(mod, opts)
	if opts.kind ~= nil and not kinds[opts.kind] then
		return nil, "--kind: one of account, reset, contact, account-and-contact";
	end
	local creator = opts.creator and (opts.creator:find("@", 1, true) and jid_bare(opts.creator) or opts.creator);
	return mod.list_pending(opts.kind, creator);
end

function verbs.list(self, mod, opts)
	local list, err = pending(mod, opts);
	if not list then
		return nil, err;
	end
	local print_row = require "util.human.io".table({
		{ title = "Token"; key = "token"; width = 24 };
		{ title = "Kind"; key = "kind"; width = 19 };
		{ title = "Creator"; key = "creator"; width = "100%" };
		{ title = "Expires"; key = "expires"; width = 19 };
		{ title = "Uses left"; key = "uses_left"; width = 9 };
	}, math.max(self.session.width or 0, 132)); -- one invite a line, wider than a terminal if need be
	self.session.print(print_row());
	for _, item in ipairs(list) do
		self.session.print(print_row({
			token = item.token;
			kind = item.audit.kind;
			creator = item.audit.creator or "unknown";
			expires = os.date("%Y-%m-%dT%T", item.audit.expires);
			uses_left = uses_left_text(item.uses_left);
		}));
	end
	return true, ("%d pending invites"):format(#list);
end

function verbs.revoke_by(self, mod, opts, _, creator)
	local list, err;
	if opts.tree then -- what the creator made, and everyone who came from its invites
		list, err = tree.pending(mod, creator:find("@", 1, true) and jid_bare(creator) or creator);
	else
		list, err = pending(mod, { creator = creator });
	end
	if not list then
		return nil, err;
	end
	local revoked = 0;
	for _, item in ipairs(list) do
		local ok, delete_err = mod.delete_account_invite(item.token, self.source);
		if ok then
			revoked = revoked + 1;
		elseif delete_err ~= codes.not_pending then -- one used or expired since the list was made: not ours to count
			return nil, ("Revoked %d invitations, then failed: %s"):format(revoked, delete_err);
		end
	end
	return true, ("Revoked %d invitations created by %s%s"):format(revoked, creator, opts.tree and " and its invite tree" or "");
end

function verbs.tree(self, mod, _, _, account)
	local found, err = tree.of(mod, jid_bare(account) or account);
	if not found then
		return nil, err;
	end
	for _, line in ipairs(found.lines) do
		self.session.print(line);
	end
	return true, ("%d accounts came from the invites of %s"):format(found.size, jid_bare(account) or account);
end

function verbs.check(self, mod, _, host)
	local findings = check.run(mod, host);
	for _, finding in ipairs(findings) do
		self.session.print(host .. ": " .. finding.text);
	end
	if findings[1] then
		return nil, ("%d problems with invites on %s"):format(#findings, host);
	end
	return true, "No problems found with invites on " .. host;
end

-- Moves every invite of HOST into the layout --to names (see invites_storage.lib.lua). In the
-- server (the shell) the running module uses that layout from now on, until it is restarted.
function verbs.migrate(self, mod, opts)
	local to = opts.to;
	if to ~= "records" and to ~= "stock" then
		return nil, "--to: records or stock";
	end
	local counts, err = mod.migrate_storage(to, self.progress);
	if not counts then
		return nil, err;
	end
	local note = counts.configured ~= to and prosody.process_type == "prosody"
		and ("; set invites_storage_layout = %q before the next restart, or it moves them back"):format(to) or "";
	return true, ("Moved %d pending invites to the %s layout, skipped %d as expired, %d already there, %d ended%s")
		:format(counts.moved, to, counts.expired, counts.already, counts.ended, note);
end

local commands = {};
for _, command in ipairs(core.shell_commands) do
	commands[command.name] = command;
end

local function missing_argument(command, args)
	for i, arg in ipairs(command.args) do
		if type(args[i]) ~= "string" then
			return "Missing argument: " .. arg.name;
		end
	end
end

-- A mistake in a verb's words, and how the verb is written.
local function usage_mistake(command, why)
	return ("%s (usage: %s)"):format(why, command.usage);
end

-- One handler per verb, for both shells: 13 passes the fixed arguments and its parsed flags;
-- 0.12 passes every word as a string (as does a Lua call without a flags table).
local function shell_handler(command)
	local verb, fixed = verbs[command.name], #command.args;
	return function (self, ...)
		local args, opts = { ... }, select(fixed + 1, ...);
		if type(opts) ~= "table" then
			local words = {};
			for i = 1, select("#", ...) do
				words[#words + 1] = args[i] ~= nil and tostring(args[i]) or nil;
			end
			local why;
			args, opts, why = core.parse_shell_args(command.name, words);
			if not args then
				return nil, usage_mistake(command, why);
			end
		end
		local missing = missing_argument(command, args);
		if missing then
			return nil, usage_mistake(command, missing);
		end
		local _, host = jid_split(args[1]);
		local mod, err = host_module(host);
		if not mod then
			return nil, err;
		end
		local caller = setmetatable({ source = "shell" }, { __index = self });
		return verb(caller, mod, opts, table.unpack(args, 1, fixed));
	end;
end

function admin.register_shell()
	if not stock_0_12 then
		-- Prosody 13: shell-command items (never the old table as well: assigning it wipes these).
		for _, command in ipairs(core.shell_commands) do
			command.handler = shell_handler(command);
			module:add_item("shell-command", command);
		end
		return;
	end
	local console_env = module:shared("/*/admin_shell/env");
	console_env.invite = console_env.invite or {};
	for _, command in ipairs(core.shell_commands) do
		console_env.invite[command.name] = shell_handler(command);
	end
end

-- prosodyctl mod_invites VERB HOST ...: the shell's verbs, with the server stopped or running.
-- `mod` is mod_invites, already switched to HOST.
function admin.command(mod, verb, words)
	local args, opts, why = core.parse_shell_args(verb, words);
	local missing = args and missing_argument(commands[verb], args);
	if not args or missing then
		io.stderr:write("prosodyctl mod_invites ", verb, ": ", missing or why, "\n");
		io.stderr:write("usage: ", commands[verb].prosodyctl_usage, "\n");
		return 2;
	end
	local caller = { source = "prosodyctl"; session = { print = print; width = 100 }; progress = admin.progress_meter() };
	local ok, message = verbs[verb](caller, mod, opts, table.unpack(args));
	if not ok then
		io.stderr:write("prosodyctl mod_invites ", verb, ": ", tostring(message), "\n");
		return 1;
	end
	print(message);
	return 0;
end

-- On a terminal, a line that tells how far a long command got: done / total and the rate.
function admin.progress_meter()
	local pposix_ok, pposix = pcall(require, "util.pposix");
	if not (pposix_ok and pposix.isatty and pposix.isatty(io.stderr)) then
		return nil;
	end
	local now = require "util.time".now;
	local started, shown = now(), 0;
	return function (done, total)
		local t = now();
		if done < total and t - shown < 0.2 then
			return;
		end
		shown = t;
		io.stderr:write(("\r%d / %d invites (%.0f/s)"):format(done, total, done / math.max(t - started, 1e-3)));
		if done == total then
			io.stderr:write("\n");
		end
	end;
end

local function usage_error(verb, ...)
	io.stderr:write("prosodyctl mod_invites ", verb, ": ", ...);
	io.stderr:write("\n");
	return 2;
end

-- prosodyctl mod_invites check [HOST]: every host with mod_invites when HOST is not given; one
-- line per finding on stdout, exit status 1 when there is one.
local function check_hosts(mod, arg, switch_host)
	local hosts = arg[2] and { arg[2] } or check.hosts();
	if arg[3] then
		return usage_error("check", "unexpected argument: ", arg[3], "\nusage: ", commands.check.prosodyctl_usage);
	end
	local found = 0;
	for _, host in ipairs(hosts) do
		if not prosody.hosts[host] then
			return usage_error("check", "host ", tostring(host), " is not defined in the configuration");
		end
		switch_host(host);
		for _, finding in ipairs(check.run(mod, host)) do
			print(host .. ": " .. finding.text);
			found = found + 1;
		end
	end
	if found > 0 then
		return 1;
	end
	print(("No problems found with invites on %s"):format(table.concat(hosts, ", ")));
	return 0;
end

-- prosodyctl mod_invites VERB ...: `generate` (core.generate_usage), or a shell verb that has a
-- prosodyctl_usage. `mod` is mod_invites; switch_host(HOST) points it at HOST and its storage.
function admin.prosodyctl(mod, arg, switch_host)
	local verb = arg[1];
	if verb == "check" then
		return check_hosts(mod, arg, switch_host);
	end
	local command = commands[verb];
	if command and command.prosodyctl_usage then
		local host = arg[2];
		if not (host and prosody.hosts[host]) then
			return usage_error(verb, "host ", tostring(host), " is not defined in the configuration");
		end
		switch_host(host);
		return admin.command(mod, verb, { table.unpack(arg, 2) });
	end
	if verb ~= "generate" then
		io.stderr:write(core.prosodyctl_usage, "\n");
		return 2;
	end
	local request, _, usage = core.parse_generate({ table.unpack(arg, 2) });
	if not request then
		io.stderr:write("prosodyctl mod_invites generate: ", usage, "\n");
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
		reset_username = mod.prep_username(request.reset);
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
	-- Ours (mod_invites_web) knows its URL from http_external_url.
	if require "core.modulemanager".get_modules_for_host(host):contains("invites_web") then
		module:depends("invites_web");
	end

	-- A refusal with a reason (a refused room, a bad limit) is a usage error; one without
	-- (storage) is not.
	local invite, create_err, why;
	if reset_username then
		invite, create_err, why = mod.create_account_reset(reset_username, nil, request.expires_after, "prosodyctl");
	else
		local room_list = request.rooms[1] and request.rooms or nil;
		invite, create_err, why = mod.create_account(nil, { roles = admin.stored_roles(request.roles); groups = request.groups;
			max_uses = request.uses; rooms = room_list }, request.expires_after, "prosodyctl");
		if invite and room_list then
			io.stderr:write("Note: the group chats are checked when the invite is used (prosodyctl cannot see rooms)\n");
		end
	end
	if not invite then
		io.stderr:write("prosodyctl mod_invites generate: ", why or ("could not create the invite: " .. tostring(create_err)), "\n");
		return why and 2 or 1;
	end
	print(invite.landing_page or invite.uri);
	return 0;
end

admin.verbs = verbs;

return admin;
