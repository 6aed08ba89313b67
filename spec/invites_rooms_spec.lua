-- Group chats in invites (invites_rooms.lib.lua through mod_invites), with the real native library,
-- a fake Prosody module API and a fake MUC component (core.modulemanager replaced while it runs).
local fake = require "helpers.fake_prosody";

describe("invites with group chats", function ()
	local saved;
	local rooms; -- room JID -> fake room
	local invites;

	local function fake_room(options)
		local room = { _data = { destroyed = options.destroyed }; affiliations = options.affiliations or {}; set = {} };
		function room:get_persistent() return options.persistent ~= false; end -- luacheck: ignore 212/self
		function room:get_members_only() return options.members_only == true; end -- luacheck: ignore 212/self
		function room:get_allow_member_invites() return options.allow_member_invites == true; end -- luacheck: ignore 212/self
		function room:get_name() return options.name; end -- luacheck: ignore 212/self
		function room:get_password() return options.password; end -- luacheck: ignore 212/self
		function room:get_affiliation(jid) return self.affiliations[jid]; end
		function room:set_affiliation(_, jid, affiliation)
			self.affiliations[jid] = affiliation;
			self.set[#self.set + 1] = { jid, affiliation };
			return true;
		end
		return room;
	end

	before_each(function ()
		saved = { package.loaded["core.modulemanager"], package.loaded["core.usermanager"], package.loaded["core.rostermanager"] };
		package.loaded["core.usermanager"] = { is_admin = function () return false; end };
		package.loaded["core.rostermanager"] = { is_contact_subscribed = function () return false; end };
		rooms = {
			["lounge@muc.example.com"] = fake_room({ members_only = true; name = "Lounge" });
			["team@muc.example.com"] = fake_room({ members_only = true;
				affiliations = { ["alice@example.com"] = "owner"; ["carol@example.com"] = "member" } });
			["temp@muc.example.com"] = fake_room({ persistent = false });
			["gone@muc.example.com"] = fake_room({ destroyed = true });
		};
		local mod_muc = { get_room_from_jid = function (jid) return rooms[jid]; end };
		package.loaded["core.modulemanager"] = {
			get_module = function (host, name)
				if host == "muc.example.com" and name == "muc" then
					return mod_muc;
				end
			end;
		};
		invites = fake.load_module("invites", {
			prosody = { process_type = "prosody"; version = "0.12.3"; hosts = { ["muc.example.com"] = {}; ["example.com"] = {} } };
		});
	end);

	after_each(function ()
		package.loaded["core.modulemanager"], package.loaded["core.usermanager"], package.loaded["core.rostermanager"] =
			saved[1], saved[2], saved[3];
	end);

	it("stores plain JIDs normalised, duplicates dropped", function ()
		local invite = assert(invites.create_account(nil, { rooms = { "Lounge@MUC.example.com", { jid = "team@muc.example.com"; autojoin = false },
			"lounge@muc.example.com" } }));
		assert.same({ { jid = "lounge@muc.example.com"; autojoin = true }, { jid = "team@muc.example.com"; autojoin = false } },
			invite.additional_data.rooms);
	end);

	it("refuses rooms naming the room and the reason", function ()
		local cases = {
			{ "nope@muc.example.com", "item-not-found", "no such group chat" },
			{ "gone@muc.example.com", "item-not-found", "destroyed" },
			{ "temp@muc.example.com", "bad-request", "temporary" },
			{ "room@example.com", "bad-request", "not on a group chat service" },
			{ "muc.example.com", "bad-request", "name@service" },
		};
		for _, case in ipairs(cases) do
			local invite, code, message = invites.create_account(nil, { rooms = { case[1] } });
			assert.is_nil(invite, case[1]);
			assert.equal(case[2], code, case[1]);
			assert.matches(case[1], message, 1, true);
			assert.matches(case[3], message, 1, true);
		end
	end);

	it("limits the number of rooms", function ()
		local list = {};
		for i = 1, 11 do
			list[i] = "lounge@muc.example.com";
		end
		assert.truthy(invites.create_account(nil, { rooms = list })); -- one room, eleven times
		for i = 1, 11 do
			list[i] = ("r%d@muc.example.com"):format(i);
		end
		local invite, code, message = invites.create_account(nil, { rooms = list });
		assert.is_nil(invite);
		assert.equal("bad-request", code);
		assert.matches("at most 10", message, 1, true);
	end);

	it("lets users name only rooms they may invite to", function ()
		assert.truthy(invites.create_contact("alice", false, { rooms = { "team@muc.example.com" } }));
		local invite, code, message = invites.create_contact("carol", false, { rooms = { "team@muc.example.com" } });
		assert.is_nil(invite);
		assert.equal("not-allowed", code);
		assert.matches("team@muc.example.com", message, 1, true);
		-- The shell may name any room.
		assert.truthy(invites.create_contact("carol", false, { rooms = { "team@muc.example.com" } }, nil, "shell"));
	end);

	it("refuses rooms on password reset invites", function ()
		local invite, code = invites.create_account_reset("bob", { rooms = { "lounge@muc.example.com" } });
		assert.is_nil(invite);
		assert.equal("bad-request", code);
	end);

	it("grants membership, never downgrades or unbans, and reports each room", function ()
		rooms["team@muc.example.com"].affiliations["dave@example.com"] = "outcast";
		local invite = assert(invites.create_account(nil, { rooms = { "lounge@muc.example.com", "team@muc.example.com" } }));
		rooms["lounge@muc.example.com"].affiliations["erin@example.com"] = "admin";
		local results = invites.apply_rooms(invite, "dave@example.com");
		assert.equal("granted", results[1].outcome);
		assert.equal("banned", results[2].outcome);
		assert.equal("outcast", rooms["team@muc.example.com"].affiliations["dave@example.com"]);
		results = invites.apply_rooms(invite, "erin@example.com");
		assert.equal("kept-admin", results[1].outcome);
		assert.equal("admin", rooms["lounge@muc.example.com"].affiliations["erin@example.com"]);
		-- A room destroyed since does not stop the others.
		rooms["lounge@muc.example.com"]._data.destroyed = true;
		results = invites.apply_rooms(invite, "frank@example.com");
		assert.equal("room-gone", results[1].outcome);
		assert.equal("granted", results[2].outcome);
	end);
end);
