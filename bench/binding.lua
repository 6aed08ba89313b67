-- The cost of crossing into the native library, without Prosody: ns per call of the binding
-- methods mod_invites calls per invite (create, validate, revoke_plan, reservation_confirm,
-- classify), on a record shaped like a stored one, and of every crossing one registration makes
-- after its pre-auth (registering, registered, the removal and the claim's settling). Run after
-- `make`:
--   lua5.4 bench/binding.lua [path/to/invites_core.so] [N]
-- Prints one line per method: the best of five runs of N calls (CPU time, os.clock).

local path = arg[1] or "target/plugins/invites_core.so";
local n = tonumber(arg[2]) or 200000;
local open_core = assert(package.loadlib(path, "luaopen_invites_core"));
local core = open_core();

local host = "example.com";
local now = 1700000000;
local invites = core.new(host, function () end);

local token = "Xo3gdOvANs77aUhUX40RFxTZ";
-- A host-level record as storage hands it back: what create() made plus what the shim and
-- invite-created handlers add.
local record = {
	type = "register";
	jid = "bob@" .. host;
	token = token;
	allow_registration = true;
	uri = "xmpp:bob@" .. host .. "?register;preauth=" .. token;
	created_at = now;
	expires = now + 3600;
	additional_data = { source = "admin@" .. host .. "/laptop"; roles = { ["prosody:registered"] = true }; max_uses = 3 };
	landing_page = "https://" .. host .. "/invite?" .. token;
};

local function best_of(runs, fn)
	local best = math.huge;
	for _ = 1, runs do
		local start = os.clock();
		for _ = 1, n do
			fn();
		end
		best = math.min(best, os.clock() - start);
	end
	return best * 1e9 / n;
end

local validated = assert(invites:validate(token, record, nil, nil, now));
local registration = core.new_registration(host, function () end, { prep = function (name) return name end });
-- What storage holds of the invite (mod_invites' standing): its record, an audit record without uses.
local standing = { record = record; audit = { uses = {} } };

local cases = {
	{ "create", function () return invites:create("register", "bob", true, 3600, nil, nil, now) end },
	{ "validate", function () return invites:validate(token, record, nil, nil, now) end },
	{ "revoke_plan", function () return invites:revoke_plan(token, record) end },
	{ "reservation_confirm", function () return invites:reservation_confirm("bob", token, record, now) end },
	{ "registration", function ()
		assert(registration:registering({ invite_only = true; username = "bob"; account_exists = false;
			invite = validated; standing = standing }, 1, now));
		local plan = assert(registration:registered(validated, 1, { username = "bob"; inviter_exists = false;
			standing = standing }));
		invites:removed(token);
		registration:consumed(token, true, now);
		return plan;
	end },
};
-- Methods a given build may lack (benchmarking an older library) are left out.
local optional = {
	{ "classify", function () return invites:classify(record) end },
};
for _, case in ipairs(optional) do
	local found, method = pcall(function () return invites[case[1]] end);
	if found and method then
		table.insert(cases, case);
	end
end

io.write(("binding: %s, N=%d, best of 5 (ns/call)\n"):format(_VERSION, n));
for _, case in ipairs(cases) do
	assert(case[2](), case[1] .. " failed");
	io.write(("  %-20s %8.0f\n"):format(case[1], best_of(5, case[2])));
end
