-- Contract of mod_invites' module environment (README: "API for other modules", storage layout), with the real native library and a
-- fake Prosody module API.
local fake = require "helpers.fake_prosody";

describe("mod_invites", function ()
	local real_time = os.time;
	local clock;
	local invites, module;

	before_each(function ()
		clock = 1700000000;
		os.time = function () return clock; end
		invites, module = fake.load_module("invites", { config = { invite_expiry = 3600 } });
	end);

	after_each(function ()
		os.time = real_time;
	end);

	local function store() return module.storage.data; end

	it("exports the stock API and ours as module globals, and nothing else", function ()
		-- The same list as README "API for other modules".
		local api = { "create_account", "create_account_reset", "create_contact", "create_group",
			"pending_account_invites", "get_account_invite_info", "delete_account_invite", "get", "use",
			"reserved_by", "standing", "prep_username", "registration_possible", "redeem", "record_use",
			"all_invites", "list_pending", "created_by", "inspect", "apply_rooms", "purge", "migrate_storage" };
		local expected = {};
		for _, name in ipairs(api) do
			assert.is_function(invites[name], name);
			expected[name] = true;
		end
		for name, value in pairs(invites) do
			if type(value) == "function" and rawget(_G, name) ~= value then
				assert.is_true(expected[name] or false, name .. " is exported but not pinned");
			end
		end
	end);

	it("never issues a token that starts like a command-line option", function ()
		-- One stock token in 64 starts with "-"; 2000 of ours without one fail by chance with
		-- probability below 1e-13.
		for _ = 1, 2000 do
			local invite = assert(invites.create_account());
			assert.is_nil(invite.token:find("^%-"), invite.token);
		end
	end);

	it("has one username rule: nodeprep, strict for names users choose", function ()
		assert.equal("alice", invites.prep_username("Alice"));
		assert.is_nil(invites.prep_username("a@b"));
		assert.is_nil(invites.prep_username(42));
		assert.is_nil(invites.prep_username(nil));
		-- U+0221 is unassigned in Unicode 3.2 (stringprep's table): only strict mode refuses it.
		assert.equal("x\200\161", invites.prep_username("x\200\161"));
		assert.is_nil(invites.prep_username("x\200\161", true));
	end);

	it("says registration is possible only with a module that registers invitees", function ()
		local function possible(loaded)
			local env = fake.load_module("invites", { prosody = { process_type = "prosody", hosts = { ["example.com"] = { modules = loaded } } } });
			return env.registration_possible();
		end
		assert.is_true(possible({ invites_register = {}, register_ibr = {} }));
		assert.is_false(possible({ register_ibr = {} }));
		assert.is_false(possible({}));
		assert.is_true(possible(nil)); -- outside the server: nothing to tell
	end);

	it("creates account invites stored at host level only", function ()
		local invite = assert(invites.create_account());
		assert.equal("register", invite.type);
		assert.equal("example.com", invite.jid);
		assert.matches("^[%w_-]+$", invite.token);
		assert.is_true(#invite.token >= 22);
		assert.equal("xmpp:example.com?register;preauth=" .. invite.token, invite.uri);
		assert.equal(clock, invite.created_at);
		assert.equal(clock + 3600, invite.expires);
		assert.equal(invite, store()[""][invite.token]);
		local count = 0;
		for _ in pairs(store()) do count = count + 1; end
		assert.equal(1, count);
	end);

	it("restricts account invites to a nodeprepped username", function ()
		local invite = assert(invites.create_account("Bob"));
		assert.equal("bob@example.com", invite.jid);
		assert.same({ nil, "invalid-username" }, { invites.create_account("a@b") });
		local valid = assert(invites.get(invite.token));
		assert.equal("bob", valid.username);
		assert.is_nil(valid.inviter);
		assert.equal("bob@example.com", valid.jid);
	end);

	it("creates reset invites in both call shapes", function ()
		local invite = assert(invites.create_account_reset("alice"));
		assert.same({ allow_reset = "alice" }, invite.additional_data);
		assert.equal(clock + 86400, invite.expires);
		invite = assert(invites.create_account_reset("alice", { source = "x" }, 60));
		assert.same({ allow_reset = "alice", source = "x" }, invite.additional_data);
		assert.equal(clock + 60, invite.expires);
	end);

	it("stores contact invites at user level, and at host level only when they allow registration", function ()
		local contact = assert(invites.create_contact("alice", false));
		assert.equal("xmpp:alice@example.com?roster;preauth=" .. contact.token, contact.uri);
		assert.equal(contact.expires, store().alice[contact.token]);
		assert.is_nil(store()[""]);

		local ibr = assert(invites.create_contact("alice", true));
		assert.equal("xmpp:alice@example.com?roster;preauth=" .. ibr.token .. ";ibr=y", ibr.uri);
		assert.equal(ibr, store()[""][ibr.token]);
		assert.equal(ibr.expires, store().alice[ibr.token]);
		assert.same({ nil, "invalid-username" }, { invites.create_contact(nil) });
	end);

	it("makes group invites reusable only with a ttl", function ()
		local once = assert(invites.create_group({ "g1" }, { source = "s" }));
		assert.same({ groups = { "g1" }, source = "s" }, once.additional_data);
		assert.is_false(once.reusable);
		local many = assert(invites.create_group({ "g1" }, nil, 600));
		assert.is_true(many.reusable);
		assert.is_true(assert(invites.get(many.token)):use());
		assert.is_truthy(invites.get(many.token));
	end);

	it("fires invite-created before storing, and stores what handlers add", function ()
		module:hook("invite-created", function (invite) invite.landing_page = "https://x/" .. invite.token; end);
		local invite = assert(invites.create_account());
		assert.equal("invite-created", module.fired[1].name);
		assert.equal("https://x/" .. invite.token, store()[""][invite.token].landing_page);
		assert.equal(invite.landing_page, assert(invites.get(invite.token)).landing_page);
	end);

	it("returns the stock error strings from get", function ()
		local invite = assert(invites.create_account());
		assert.same({ nil, "no-token" }, { invites.get(nil) });
		assert.same({ nil, "token-invalid" }, { invites.get("") });
		assert.same({ nil, "token-invalid" }, { invites.get("doesnotexist") });
		clock = invite.expires;
		assert.is_truthy(invites.get(invite.token));
		clock = invite.expires + 1;
		assert.same({ nil, "token-expired" }, { invites.get(invite.token) });
		assert.same({ nil, "token-expired" }, { invites.get_account_invite_info(invite.token) });
	end);

	it("rejects junk tokens without touching storage", function ()
		local reads = module.storage.reads;
		for _, junk in ipairs({ "t=abc&c=app", ("x"):rep(10000), "jöns", "a b", "<x/>" }) do
			assert.same({ nil, "token-invalid" }, { invites.get(junk) });
			assert.same({ nil, "token-invalid" }, { invites.get(junk, "alice") });
		end
		assert.same({ nil, "token-invalid" }, { invites.get(42) });
		assert.equal(reads, module.storage.reads);
	end);

	it("validates contact-only tokens for their inviter only (XEP-0379)", function ()
		local invite = assert(invites.create_contact("alice", false));
		local valid = assert(invites.get(invite.token, "alice"));
		assert.equal("roster", valid.type);
		assert.equal("alice", valid.username);
		assert.is_false(valid.reusable);
		assert.same({ nil, "token-invalid" }, { invites.get(invite.token, "bob") });
		assert.same({ nil, "token-invalid" }, { invites.get(invite.token) });
		assert.is_true(valid:use());
		assert.is_nil(store().alice);
		assert.same({ nil, "token-invalid" }, { invites.get(invite.token, "alice") });
	end);

	it("gives registration-path lookups of contact invites an inviter", function ()
		local invite = assert(invites.create_contact("alice", true));
		local valid = assert(invites.get(invite.token));
		assert.equal("alice", valid.inviter);
		assert.equal("alice", valid.username);
		assert.is_true(valid:use());
		assert.is_nil(store()[""]);
		assert.is_nil(store().alice);
	end);

	it("revokes both halves on delete", function ()
		local invite = assert(invites.create_contact("alice", true));
		assert.is_true(invites.delete_account_invite(invite.token));
		assert.is_nil(store()[""]);
		assert.is_nil(store().alice);
		assert.same({ nil, "token-invalid" }, { invites.get(invite.token, "alice") });
		assert.same({ nil, "no-token" }, { invites.delete_account_invite(nil) });
	end);

	it("refuses to revoke an invite it cannot read, and keeps both halves", function ()
		local invite = assert(invites.create_contact("alice", true));
		module.storage.fail_reads = true;
		assert.same({ nil, "internal-server-error" }, { invites.delete_account_invite(invite.token) });
		module.storage.fail_reads = false;
		assert.is_truthy(store()[""][invite.token]);
		assert.is_truthy(store().alice[invite.token]);
		assert.is_true(invites.delete_account_invite(invite.token));
		assert.is_nil(store().alice);
	end);

	it("reports a failed read in standing as a failure, not as gone", function ()
		local invite = assert(invites.get(assert(invites.create_account()).token));
		module.storage.fail_reads = true;
		assert.same({ nil, "internal-server-error" }, { invites.standing(invite) });
		module.storage.fail_reads = false;
		assert.is_table(invites.standing(invite).record);
	end);

	it("reports read and remove failures of the user-deleted clean-up at error level", function ()
		local contact = assert(invites.create_contact("alice", true));
		module.storage.fail_reads = true;
		assert.has_no.errors(function ()
			fake.fire_global(module, "user-deleted", { host = "example.com", username = "alice" });
		end);
		module.storage.fail_reads = false;
		local logged_error;
		for _, entry in ipairs(module.logs) do
			if entry.level == "error" and entry.message:match("alice") then logged_error = entry; end
		end
		assert.is_truthy(logged_error, "read failure logged at error");
		local mark = #module.logs;
		module.storage.fail_writes = true;
		fake.fire_global(module, "user-deleted", { host = "example.com", username = "alice" });
		module.storage.fail_writes = false;
		local errors = 0;
		for i = mark + 1, #module.logs do
			if module.logs[i].level == "error" then errors = errors + 1; end
		end
		assert.is_true(errors >= 1, "remove failure logged at error");
		assert.is_truthy(store()[""][contact.token]);
	end);

	describe("after an inviter was deleted outside the server (prosodyctl deluser)", function ()
		after_each(function ()
			fake.deleted_accounts = {};
		end);

		it("refuses contact invites whose inviter's entry was purged", function ()
			local contact = assert(invites.create_contact("alice", false));
			local ibr = assert(invites.create_contact("alice", true));
			store().alice = nil; -- deluser purges the user's stores; the host-level record stays
			assert.same({ nil, "token-invalid" }, { invites.get(contact.token, "alice") });
			assert.same({ nil, "token-invalid" }, { invites.get(ibr.token) });
			assert.is_truthy(store()[""][ibr.token]);
		end);

		it("refuses contact invites of an account that no longer exists, even with the entry left", function ()
			local contact = assert(invites.create_contact("alice", false));
			local ibr = assert(invites.create_contact("alice", true));
			assert.is_truthy(invites.get(ibr.token));
			fake.deleted_accounts.alice = true;
			assert.same({ nil, "token-invalid" }, { invites.get(contact.token, "alice") });
			assert.same({ nil, "token-invalid" }, { invites.get(ibr.token) });
		end);

		it("refuses account invites whose creator asked to befriend the invitee and is gone", function ()
			local befriend = assert(invites.create_account(nil, { roster_subscription = "alice@example.com" }));
			local plain = assert(invites.create_account(nil, { source = "alice@example.com" }));
			fake.deleted_accounts.alice = true;
			assert.same({ nil, "token-invalid" }, { invites.get(befriend.token) });
			assert.is_truthy(invites.get(plain.token), "nobody to befriend: nothing to check");
		end);

		it("answers internal-server-error when the inviter's entry cannot be read", function ()
			local ibr = assert(invites.create_contact("alice", true));
			local contact = assert(invites.create_contact("alice", false));
			module.storage.fail_reads = true;
			assert.same({ nil, "internal-server-error" }, { invites.get(ibr.token) });
			assert.same({ nil, "internal-server-error" }, { invites.get(contact.token, "alice") });
		end);
	end);

	it("revokes the inviter's half first and stops at a failure, leaving no usable half", function ()
		local ibr = assert(invites.create_contact("alice", true));
		local map = module.storage.map;
		local real_set_keys = map.set_keys;
		map.set_keys = function (self, user, keydatas)
			if user == nil then return nil, "simulated host-level failure"; end
			return real_set_keys(self, user, keydatas);
		end;
		local ok, err = invites.delete_account_invite(ibr.token);
		map.set_keys = real_set_keys;
		assert.same({ nil, "internal-server-error" }, { ok, err });
		assert.is_nil(store().alice, "the inviter's half went first");
		assert.same({ nil, "token-invalid" }, { invites.get(ibr.token) }, "the host half left behind is dead");
	end);

	it("lists pending account invites, soonest expiry first", function ()
		local late = assert(invites.create_account(nil, nil, 7200));
		local soon = assert(invites.create_account(nil, nil, 60));
		assert(invites.create_contact("alice", false));
		local seen = {};
		for token, record in invites.pending_account_invites() do
			seen[#seen + 1] = token;
			assert.equal(token, record.token);
		end
		assert.same({ soon.token, late.token }, seen);
		clock = clock + 61;
		seen = {};
		for token in invites.pending_account_invites() do seen[#seen + 1] = token; end
		assert.same({ late.token }, seen);
	end);

	it("reports storage failures and leaves no half-written invite", function ()
		module.storage.fail_writes = true;
		assert.same({ nil, "internal-server-error" }, { invites.create_account() });
		assert.same({ nil, "internal-server-error" }, { invites.create_contact("alice", true) });
		assert.same({}, store());
	end);

	it("answers which invite reserves a username from an index confirmed against storage", function ()
		-- Written before the first lookup, as Prosody's own module or another process would.
		store()[""] = { S = { type = "register", jid = "zoe@example.com", token = "S", expires = clock + 60 } };
		assert.equal("S", invites.reserved_by("zoe"));
		local bob = assert(invites.create_account("bob"));
		assert(invites.create_account_reset("carol"));
		assert(invites.create_account());
		local reads = module.storage.reads;
		assert.equal(bob.token, invites.reserved_by("bob"));
		assert.is_nil(invites.reserved_by("carol"), "reset invites reserve nothing");
		assert.is_nil(invites.reserved_by("nobody"));
		assert.equal(reads + 1, module.storage.reads, "only the reserving record is read");
		assert(invites.get(bob.token)):use();
		assert.is_nil(invites.reserved_by("bob"));
		store()[""].S.expires = clock - 1; -- backdated behind the index's back
		assert.is_nil(invites.reserved_by("zoe"));

		local dave = assert(invites.create_account("dave"));
		module.storage.fail_reads = true;
		assert.same({ nil, "internal-server-error" }, { invites.reserved_by("dave") });
		module.storage.fail_reads = false;
		assert.equal(dave.token, invites.reserved_by("dave"), "a failed read forgets nothing");
	end);

	it("reads what is stored of a validated invite now: its record while usable, its uses", function ()
		local first = assert(invites.get(assert(invites.create_account(nil, { max_uses = 2 })).token));
		local second = assert(invites.get(assert(invites.create_account()).token));
		local reads = module.storage.reads;
		local standing = invites.standing(first);
		assert.is_table(standing.record);
		assert.same({}, standing.audit.uses);
		assert.equal(reads + 1, module.storage.reads, "one read: the entry holds record and audit");
		assert.is_true(invites.redeem(first, "a@example.com", "registered"));
		standing = invites.standing(first);
		assert.is_table(standing.record, "a use left");
		assert.equal(1, #standing.audit.uses);
		assert.is_true(invites.redeem(first, "b@example.com", "registered"));
		assert.is_nil(invites.standing(first).record, "the last use consumed it");
		assert(second:use());
		assert.is_nil(invites.standing(second).record);
		assert.same({ audit = false }, invites.standing({ token = 42 }));
	end);

	it("purges expired invites after a grace period, both halves", function ()
		local old = assert(invites.create_contact("alice", true, nil, 10));
		local fresh = assert(invites.create_account());
		clock = clock + 11;
		assert.equal(0, invites.purge());
		clock = clock + 3600;
		assert.equal(2, invites.purge());
		assert.is_nil(store().alice);
		assert.is_nil(store()[""][old.token]);
		assert.is_truthy(store()[""][fresh.token]);
		assert.equal(2, #module.timers); -- the purge, and the configuration check once loaded
	end);

	it("removes a deleted user's invites", function ()
		local contact = assert(invites.create_contact("alice", true));
		local reset = assert(invites.create_account_reset("alice"));
		local other = assert(invites.create_account("bob"));
		module:fire_event("user-deleted", { username = "alice", host = "elsewhere.example" });
		assert.is_truthy(store().alice);
		module:fire_event("user-deleted", { username = "alice", host = "example.com" });
		assert.is_nil(store().alice);
		assert.is_nil(store()[""][contact.token]);
		assert.is_nil(store()[""][reset.token]);
		assert.is_truthy(store()[""][other.token]);
	end);

	it("accepts invite_expiry as a period string and ignores a bad one", function ()
		invites, module = fake.load_module("invites", { config = { invite_expiry = "2 days" } });
		assert.equal(clock + 172800, assert(invites.create_account()).expires);
		invites, module = fake.load_module("invites", { config = { invite_expiry = "soon" } });
		assert.equal(clock + 604800, assert(invites.create_account()).expires);
		assert.equal("error", module.logs[1].level);
	end);

	it("puts create_account and create_contact into the admin shell", function ()
		local shared = {};
		invites, module = fake.load_module("invites", { shared = shared });
		local shell = shared["/*/admin_shell/env"].invite;
		assert.is_function(shell.create_account);
		assert.is_function(shell.create_contact);
	end);
end);
