-- Loads the native core (invites_core.so) shipped in the same directory as the modules.
-- The one place that knows where the library lives; every shim does module:require "invites_native".
local path = module:get_directory().."/invites_core.so";
local open_core, err = package.loadlib(path, "luaopen_invites_core");
if not open_core then
	error(("Cannot load the invites native library %s: %s"):format(path, tostring(err)));
end
return open_core();
