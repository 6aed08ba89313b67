std = "lua54"
max_line_length = 150
-- Prosody's own libraries are plain requires; nothing else is global.
read_globals = { "prosody" }

files["lua/"] = {
	-- Module environment, as Prosody's .luacheckrc sets it for plugins/
	allow_defined_top = true;
	module = true;
	read_globals = {
		"module", "prosody", "hosts",
	};
	globals = {
		"module.command", "module.load", "module.unload", "module.add_host", "module.host",
		"module.save", "module.restore",
	};
}

files["spec/"] = {
	std = "+busted";
	globals = { "os.time" };
}

-- Test-only Prosody modules are plugins too.
files["spec/e2e/modules/"] = files["lua/"];
files["bench/modules/"] = files["lua/"];
