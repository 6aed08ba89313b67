-- Test-only: gives accounts roles from the configuration, the way the Prosody release keeps them,
-- so the end-to-end tests can exercise role options:
--   0.12: the `roles` keyval store, { role = true };
--   13: the first role as the account's primary role, the others secondary, through usermanager
--       (the harness declares the roles with custom_roles, inheriting prosody:registered).
--
--   test_roles = { carol = { "invites:creator" } }
local usermanager = require "core.usermanager";

local test_roles = module:get_option("test_roles", {});

if usermanager.set_user_role then
	module:on_ready(function ()
		for username, roles in pairs(test_roles) do
			for i, role in ipairs(roles) do
				local set = i == 1 and usermanager.set_user_role or usermanager.add_user_secondary_role;
				local ok, ret, err = pcall(set, username, module.host, role);
				if not (ok and ret) then
					module:log("error", "Could not give %s the test role %s: %s", username, role, tostring(ok and err or ret));
				end
			end
		end
	end);
	return;
end

local roles_store = module:open_store("roles");

for username, roles in pairs(test_roles) do
	local map = {};
	for _, role in ipairs(roles) do
		map[role] = true;
	end
	local ok, err = roles_store:set(username, map);
	if not ok then
		module:log("error", "Could not give %s the test roles: %s", username, tostring(err));
	end
end
