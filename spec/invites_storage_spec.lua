-- The per-invite layout (invites_storage.lib.lua, README "Storage layouts"): what each operation
-- reads and writes, counted per store, with the real native library and a fake module API.
local fake = require "helpers.fake_prosody";

describe("the per-invite storage layout", function ()
	local real_time = os.time;
	local clock;
	local invites, stores;

	-- Reads and writes of every store since the last call.
	local last = {};
	local function traffic()
		local seen = {};
		for name, storage in pairs(stores) do
			local before = last[name] or { reads = 0; writes = 0 };
			local now = { reads = storage.reads; writes = storage.writes };
			if now.reads ~= before.reads or now.writes ~= before.writes then
				seen[name] = { reads = now.reads - before.reads; writes = now.writes - before.writes };
			end
			last[name] = now;
		end
		return seen;
	end

	before_each(function ()
		clock = 1700000000;
		os.time = function () return clock; end
		stores = {
			invite_token = fake.new_storage();
			invites = fake.new_storage();
			invites_by_name = fake.new_storage();
			invites_audit = fake.new_storage();
		};
		last = {};
		invites = fake.load_module("invites", {
			config = { invite_expiry = 3600; invites_storage_layout = "records" };
			storage = stores.invite_token;
			stores = stores;
		});
		traffic();
	end);

	after_each(function ()
		os.time = real_time;
	end);

	local function entry(token)
		return stores.invites.data[token] and stores.invites.data[token].invite;
	end

	it("creates an account invite in one write: its own record, holding its audit record", function ()
		local invite = assert(invites.create_account(nil, nil, nil, "admin@example.com"));
		assert.same({ invites = { reads = 0; writes = 1 } }, traffic());
		assert.equal(invite.token, entry(invite.token).record.token);
		assert.equal("admin@example.com", entry(invite.token).creator);
		assert.is_nil(stores.invite_token.data[""], "nothing in stock's host-level map");
	end);

	it("keeps stock's user-level entry for contact invites and indexes restricted invites by name", function ()
		local contact = assert(invites.create_contact("alice", true));
		assert.equal(contact.expires, stores.invite_token.data.alice[contact.token]);
		local named = assert(invites.create_account("nadia"));
		assert.same({ [named.token] = named.expires }, stores.invites_by_name.data.nadia);
		assert.equal(named.token, invites.reserved_by("nadia"));
		assert.is_nil(invites.reserved_by("other"));
	end);

	it("answers get() with one read and uses an invite in one read and one write", function ()
		local invite = assert(invites.create_account());
		traffic();
		local valid = assert(invites.get(invite.token));
		assert.same({ invites = { reads = 1; writes = 0 } }, traffic());
		assert.is_true(valid:use());
		assert.same({ invites = { reads = 1; writes = 1 } }, traffic());
		assert.is_nil(entry(invite.token).record, "the invite is gone, its audit record stays");
		assert.same({ nil, "token-invalid" }, { invites.get(invite.token) });
	end);

	it("records a registration and consumes the invite in the same write", function ()
		local invite = assert(invites.create_account());
		local valid = assert(invites.get(invite.token));
		traffic();
		assert.is_true(invites.redeem(valid, "newbie@example.com", "registered"));
		assert.same({ invites = { reads = 1; writes = 1 } }, traffic());
		local stored = entry(invite.token);
		assert.is_nil(stored.record);
		assert.equal("newbie@example.com", stored.uses[1].account);
		assert.equal("used", invites.inspect(invite.token).state);
	end);

	it("rejects junk tokens without touching any store", function ()
		for _, junk in ipairs({ "t=abc&c=app", ("x"):rep(10000), "jöns", "a b", "<x/>" }) do
			assert.same({ nil, "token-invalid" }, { invites.get(junk) });
		end
		assert.same({}, traffic());
	end);

	it("moves an invite it finds in the stock layout on a miss, and keeps it single-use", function ()
		local template = assert(invites.create_account());
		local token = "writtenBehindTheBackAAAA";
		local record = {};
		for k, v in pairs(template) do
			record[k] = v;
		end
		record.token = token;
		stores.invite_token.data[""] = { [token] = record }; -- what the stock modules write
		local valid = assert(invites.get(token));
		assert.is_nil(stores.invite_token.data[""], "moved over");
		assert.equal(token, entry(token).record.token);
		assert.is_true(valid:use());
		assert.same({ nil, "token-invalid" }, { invites.get(token) });
	end);

	it("revokes pending invites only, and says what became of the others", function ()
		local invite = assert(invites.create_account());
		assert.is_true(invites.delete_account_invite(invite.token, "admin@example.com"));
		local revoked_at = entry(invite.token).revoked_at;
		assert.equal(clock, revoked_at);
		clock = clock + 10;
		traffic();
		assert.same({ nil, "not-pending", "revoked" }, { invites.delete_account_invite(invite.token, "other@example.com") });
		assert.equal(0, (traffic().invites or { writes = 0 }).writes, "nothing written");
		assert.equal("admin@example.com", entry(invite.token).revoked_by);

		local used = assert(invites.create_account());
		assert(invites.get(used.token)):use();
		assert.same({ nil, "not-pending", "used" }, { invites.delete_account_invite(used.token) });
		local expired = assert(invites.create_account(nil, nil, 60));
		clock = clock + 61;
		assert.same({ nil, "not-pending", "expired" }, { invites.delete_account_invite(expired.token) });
		assert.is_nil(entry(expired.token).record, "gone all the same: no late registration with it");
		assert.is_nil(entry(expired.token).revoked_at);
		assert.same({ nil, "not-pending", "unknown" }, { invites.delete_account_invite("nosuchtokenAAAAAAAAAAAAA") });
		assert.same({ nil, "not-pending", "unknown" }, { invites.delete_account_invite("junk!") });
	end);

	it("purges expired invites after an hour, keeping their audit records", function ()
		local invite = assert(invites.create_account());
		clock = invite.expires + 3601;
		assert.equal(1, invites.purge());
		assert.is_nil(entry(invite.token).record);
		assert.equal("expired", invites.inspect(invite.token).state);
	end);

	it("moves every invite to the stock layout and back, losing nothing", function ()
		local pending = assert(invites.create_account());
		local used = assert(invites.create_account());
		assert(invites.get(used.token)):use();
		local counts = assert(invites.migrate_storage("stock"));
		assert.same({ 1, 0, 1, 0 }, { counts.moved, counts.expired, counts.ended, counts.already });
		assert.equal(pending.token, stores.invite_token.data[""][pending.token].token);
		assert.is_nil(stores.invite_token.data[""][used.token], "a used invite is not revived");
		assert.is_nil(stores.invites.data[pending.token]);
		counts = assert(invites.migrate_storage("records"));
		assert.same({ 1, 0, 1 }, { counts.moved, counts.expired, counts.ended });
		assert.is_nil(stores.invite_token.data[""]);
		assert.truthy(invites.get(pending.token));
		assert.same({ nil, "token-invalid" }, { invites.get(used.token) });
		assert.equal("used", invites.inspect(used.token).state);
	end);

	it("moves each kind of invite as the core plans it, both ways", function ()
		local template = assert(invites.create_account());
		local named = assert(invites.create_account("nadia"));
		stores.invites.data, stores.invites_by_name.data = {}, {};
		local function record(token, expires, base) -- a stock host-level record
			local copy = {};
			for k, v in pairs(base or template) do
				copy[k] = v;
			end
			copy.token, copy.expires = token, expires;
			return copy;
		end
		local function audit(mark)
			return { kind = "account"; creator = "admin@example.com"; mark = mark; uses = {} };
		end
		local late = clock - 7200; -- a purge removes it
		stores.invite_token.data[""] = {
			pending = record("pending", clock + 60); -- made by the stock modules: no audit record
			named = record("named", clock + 60, named);
			expired = record("expired", late);
			expiredAudited = record("expiredAudited", late);
			already = record("already", clock + 60);
		};
		stores.invites_audit.data = {
			named = audit("named"); expiredAudited = audit("expiredAudited"); ended = audit("ended");
			already = audit("stale");
		};
		stores.invites.data.already = { invite = audit("already") }; -- moved by a killed run, used since
		local counts = assert(invites.migrate_storage("records"));
		assert.same({ 2, 2, 1, 1 }, { counts.moved, counts.expired, counts.ended, counts.already });
		assert.equal("pending", entry("pending").record.token);
		assert.equal("account", entry("pending").kind, "an audit record made up");
		assert.equal("named", entry("named").mark);
		assert.same({ named = clock + 60 }, stores.invites_by_name.data.nadia);
		assert.is_nil(entry("expired"), "an expired invite without an audit record leaves nothing");
		assert.equal("expiredAudited", entry("expiredAudited").mark);
		assert.is_nil(entry("expiredAudited").record);
		assert.equal("ended", entry("ended").mark);
		assert.equal("already", entry("already").mark, "the per-invite entry wins");
		assert.is_nil(entry("already").record, "and is not revived");
		assert.is_nil(stores.invite_token.data[""]);
		assert.same({}, stores.invites_audit.data);

		stores.invites.data.late = { invite = { kind = "account"; uses = {}; record = record("late", late) } };
		stores.invites.data.empty = {}; -- left by a deletion interrupted on internal storage
		stores.invites.data.junk = { invite = "junk" };
		stores.invite_token.data[""] = { stock = record("stock", clock + 60) };
		counts = assert(invites.migrate_storage("stock"));
		assert.same({ 2, 1, 3, 1 }, { counts.moved, counts.expired, counts.ended, counts.already });
		local stock_tokens = {};
		for token in pairs(stores.invite_token.data[""]) do
			stock_tokens[#stock_tokens + 1] = token;
		end
		table.sort(stock_tokens);
		assert.same({ "named", "pending", "stock" }, stock_tokens);
		assert.is_nil(stores.invites_by_name.data.nadia);
		for _, token in ipairs({ "pending", "named", "expiredAudited", "ended", "already", "late" }) do
			assert.truthy(stores.invites_audit.data[token], token);
			assert.is_nil(stores.invites_audit.data[token].record, token);
		end
		assert.same({ junk = { invite = "junk" } }, stores.invites.data, "junk is left alone");
	end);

	it("reads the stock layout's host map once per scan, not once per invite", function ()
		assert(invites.migrate_storage("stock"));
		for _ = 1, 20 do
			assert(invites.create_account());
		end
		traffic();
		assert.equal(20, #assert(invites.all_invites()));
		assert.is_true(traffic().invite_token.reads <= 2, "the admin views read the map once");
		invites.purge();
		assert.is_true(traffic().invite_token.reads <= 3, "the purge reads the map once");
	end);
end);
