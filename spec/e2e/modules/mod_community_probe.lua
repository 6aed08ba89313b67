-- Test-only: records what invite-carrying events hand to their handlers, so the community-module
-- tests can see the invite object a consumer (mod_invites_register_web, mod_register_ibr) received.
--
--   GET /community_probe -> JSON list of { event = NAME, username = ..., source = ..., invite = {fields} }
--
-- Loaded only by spec/e2e/test_community_*.py, from the test-module plugin path.
local json = require "util.json";
local array = require "util.array";

local seen = array();

local FIELDS = { "token", "type", "jid", "username", "inviter", "uri", "expires", "created_at", "landing_page", "reusable" };

local function record(name)
	return function (event)
		local invite = event.validated_invite or (event.session and event.session.validated_invite);
		local entry = { event = name, username = event.username, source = event.source };
		if type(invite) == "table" then
			local fields = {};
			for _, field in ipairs(FIELDS) do
				local value = invite[field];
				if type(value) == "string" or type(value) == "number" or type(value) == "boolean" then
					fields[field] = value;
				end
			end
			entry.invite = fields;
		end
		seen:push(entry);
	end;
end

-- Before any other handler, so a refusal further down does not hide the event.
module:hook("user-registering", record("user-registering"), 1000);
module:hook("user-registered", record("user-registered"), 1000);
module:hook("user-password-reset", record("user-password-reset"), 1000);

module:depends("http");
module:provides("http", {
	route = {
		["GET"] = function (event)
			event.response.headers.content_type = "application/json";
			return json.encode(seen);
		end;
	};
});
