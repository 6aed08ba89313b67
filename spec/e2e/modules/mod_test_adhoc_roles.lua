-- Test-only: gives accounts roles from the configuration, so the end-to-end tests can exercise
-- role options. On 0.12 they go to the `roles` keyval store ({ role = true }); on 13 they become
-- the account's primary role through the authorization provider (the roles themselves come from
-- `custom_roles` in the test configuration).
--
--   test_roles = { carol = { "invites:creator" } }
local usermanager = require "core.usermanager";
local roles_store = module:open_store("roles");

for username, roles in pairs(module:get_option("test_roles", {})) do
	local ok, err;
	if usermanager.set_user_role then
		ok, err = pcall(usermanager.set_user_role, username, module.host, roles[1]);
	else
		local map = {};
		for _, role in ipairs(roles) do
			map[role] = true;
		end
		ok, err = roles_store:set(username, map);
	end
	if not ok then
		module:log("error", "Could not give %s the test roles: %s", username, tostring(err));
	end
end
