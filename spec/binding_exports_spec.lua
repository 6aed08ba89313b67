-- The names the native binding exports (src/lib.rs builds them in one documented table): the
-- exact set, top level and sub-tables, so a new export cannot come without its line there and
-- here, and no shim can rely on one that went away. And the shell verbs' usage lines the admin
-- lib prints, which come from the core.
local fake = require "helpers.fake_prosody";

local core = assert(package.loadlib(fake.plugin_dir .. "/invites_core.so", "luaopen_invites_core"))();

local function names(t)
	local list = {};
	for name, value in pairs(t) do
		list[#list + 1] = name .. "=" .. type(value);
	end
	table.sort(list);
	return list;
end

describe("invites_core exports", function ()
	it("are exactly the documented set", function ()
		assert.same({
			"adhoc=table", "advertise_features=function", "check=function", "check_token=function", "codes=table",
			"contact_token=function", "default_reset_ttl=number", "default_ttl=number", "error_text=function",
			"generate_usage=string", "lifecycle=function", "new=function", "new_registration=function",
			"notify=table", "ns=table", "option_period=function", "parse_flag=function", "parse_generate=function",
			"parse_period=function", "parse_shell_args=function", "parse_uses=function", "prosodyctl_usage=string",
			"qr_svg=function", "quota_check=function", "redact=function", "registration_possible=function",
			"roles=table", "rooms=table", "shell_commands=table", "stanza_error=function", "tree=table",
			"version=string",
		}, names(core));
	end);

	it("have sub-tables with exactly their documented entries", function ()
		assert.same({ "account_invite=function", "invitation_fields=function", "invitation_title=string",
			"policy=function", "requested_username=function", "reset_account=function" }, names(core.adhoc));
		assert.same({ "names=function", "stored=function" }, names(core.roles));
		assert.same({ "message=function", "recipient=function" }, names(core.notify));
		assert.same({ "build=function", "cap_check=function", "is_account=function" }, names(core.tree));
		assert.same({ "check=function", "default_max=number", "invitation_mode=function", "invitation_reason=function",
			"invitation_sender=function", "normalise=function", "plan=function", "refused_outcome=function",
			"remove_on_delete=function" }, names(core.rooms));
	end);

	it("give every shell verb its usage lines", function ()
		local by_name = {};
		for _, command in ipairs(core.shell_commands) do
			by_name[command.name] = command;
			assert.equal("invite " .. command.name, command.usage:match("^invite [%w_]+"));
		end
		assert.equal("invite show HOST TOKEN", by_name.show.usage);
		assert.equal("prosodyctl mod_invites show HOST TOKEN", by_name.show.prosodyctl_usage);
		assert.is_nil(by_name.create_account.prosodyctl_usage);
		assert.equal("usage: prosodyctl mod_invites generate|list|show|delete|revoke_by|tree|check|migrate HOST [options] (see generate --help)",
			core.prosodyctl_usage);
	end);
end);
