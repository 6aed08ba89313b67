-- Test-only: gives accounts roles from the configuration, stored the way Prosody 0.12 keeps them
-- (the `roles` keyval store, { role = true }), so the end-to-end tests can exercise role options.
--
--   test_roles = { carol = { "invites:creator" } }
local roles_store = module:open_store("roles");

for username, roles in pairs(module:get_option("test_roles", {})) do
	local map = {};
	for _, role in ipairs(roles) do
		map[role] = true;
	end
	local ok, err = roles_store:set(username, map);
	if not ok then
		module:log("error", "Could not give %s the test roles: %s", username, tostring(err));
	end
end
