-- mod_invites_register's shim (README: "Registration and contact invites on the wire", stock
-- defects fixed 1-4, 7, 9) with the real native library, the real
-- mod_invites and a fake Prosody: events in, decisions and stanzas out.
local fake = require "helpers.fake_prosody";
local st = require "util.stanza";

local HOST = "example.com";

-- Just enough of core.usermanager and core.rostermanager, in memory.
local function fake_managers()
	local accounts, rosters, pushes = {}, {}, {};
	local function item(user, contact)
		rosters[user] = rosters[user] or {};
		rosters[user][contact] = rosters[user][contact] or { subscription = "none" };
		return rosters[user][contact];
	end
	local usermanager = {
		user_exists = function (username) return accounts[username] ~= nil; end;
	};
	local rostermanager = {
		is_contact_subscribed = function (user, _, contact)
			local sub = item(user, contact).subscription;
			return sub == "from" or sub == "both";
		end;
		is_user_subscribed = function (user, _, contact)
			local sub = item(user, contact).subscription;
			return sub == "to" or sub == "both";
		end;
		is_contact_pending_out = function (user, _, contact) return item(user, contact).ask; end;
		set_contact_pending_in = function (user, _, contact) item(user, contact).pending_in = true; return true; end;
		set_contact_pending_out = function (user, _, contact) item(user, contact).ask = "subscribe"; return true; end;
		subscribed = function (user, _, contact)
			local i = item(user, contact);
			i.pending_in = nil;
			i.subscription = (i.subscription == "to" or i.subscription == "both") and "both" or "from";
			return true;
		end;
		process_inbound_subscription_approval = function (user, _, contact)
			local i = item(user, contact);
			i.ask = nil;
			i.subscription = (i.subscription == "from" or i.subscription == "both") and "both" or "to";
			return true;
		end;
		roster_push = function (user, _, contact) pushes[#pushes + 1] = user .. "->" .. contact; end;
	};
	return { usermanager = usermanager, rostermanager = rostermanager, accounts = accounts, rosters = rosters, pushes = pushes };
end

describe("mod_invites_register", function ()
	local real_time = os.time;
	local clock, managers, saved;
	local invites, invites_module, register, module, storage, roles;

	local function load(config, prosody)
		storage = fake.new_storage();
		roles = fake.new_storage();
		prosody = prosody or { process_type = "prosody", hosts = { [HOST] = { sessions = {}, modules = {} } } };
		invites, invites_module = fake.load_module("invites", { storage = storage, prosody = prosody });
		prosody.hosts[HOST].modules.invites_register = true;
		prosody.hosts[HOST].modules.register_ibr = true;
		register, module = fake.load_module("invites_register", {
			storage = storage;
			stores = { roles = roles };
			config = config;
			prosody = prosody;
			depends = { invites = invites };
		});
	end

	before_each(function ()
		clock = 1700000000;
		os.time = function () return clock; end
		managers = fake_managers();
		saved = { package.loaded["core.usermanager"], package.loaded["core.rostermanager"] };
		package.loaded["core.usermanager"] = managers.usermanager;
		package.loaded["core.rostermanager"] = managers.rostermanager;
		load({});
	end);

	after_each(function ()
		os.time = real_time;
		package.loaded["core.usermanager"], package.loaded["core.rostermanager"] = saved[1], saved[2];
	end);

	local function fire(event, data) return fake.fire_event(module, event, data); end

	local function session(ip)
		local s = { type = "c2s_unauthed", ip = ip or "192.0.2.1", sent = {} };
		function s.send(stanza) s.sent[#s.sent + 1] = stanza; end
		return s;
	end

	local function preauth(s, token, iq_type)
		local iq = st.iq({ type = iq_type or "set", id = "p1" }):tag("preauth", { xmlns = "urn:xmpp:pars:0", token = token }):up();
		local handled = fire("stanza/iq/urn:xmpp:pars:0:preauth", { origin = s, stanza = iq });
		local reply = s.sent[#s.sent];
		local err = reply and reply.attr.type == "error" and reply:get_child("error");
		return {
			handled = handled;
			ok = reply and reply.attr.type == "result";
			type = err and err.attr.type;
			condition = err and err.tags[1] and err.tags[1].name;
			text = err and err:get_child_text("text", "urn:ietf:params:xml:ns:xmpp-stanzas");
		};
	end

	-- What mod_register_ibr does with user-registering (plus user-registered on success).
	local function ibr(s, username)
		local event = { username = username, password = "pw", host = HOST, ip = s.ip, session = s, allowed = true };
		fire("user-registering", event);
		if not event.allowed then
			return false, event;
		end
		if managers.accounts[username] then
			if event.allow_reset ~= username then
				return false, { error_condition = "conflict" };
			end
			fire("user-password-reset", event);
			return "reset", event;
		end
		managers.accounts[username] = true;
		fire("user-registered", { username = username, host = HOST, source = "mod_register", session = s });
		return true, event;
	end

	-- A line either module logged (mod_invites logs what failed in storage).
	local function logged(pattern)
		for _, logs in ipairs({ module.logs, invites_module.logs }) do
			for _, entry in ipairs(logs) do
				if entry.message:match(pattern) then
					return entry;
				end
			end
		end
	end

	describe("stream features", function ()
		local function features(s, config)
			if config then load(config); end
			local f = st.stanza("stream:features");
			fire("stream-features", { origin = s, features = f });
			local found = {};
			for _, tag in ipairs(f.tags) do found[#found + 1] = tag.attr.xmlns; end
			return found;
		end

		it("are offered to unauthenticated streams only, and to plain ones only without required encryption", function ()
			assert.same({}, features({ type = "c2s_unauthed", secure = false }));
			assert.same({ "urn:xmpp:invite", "urn:xmpp:ibr-token:0" }, features({ type = "c2s_unauthed", secure = true }));
			assert.same({}, features({ type = "c2s", secure = true }));
			assert.same({ "urn:xmpp:invite", "urn:xmpp:ibr-token:0" },
				features({ type = "c2s_unauthed", secure = false }, { c2s_require_encryption = false }));
			assert.same({ "urn:xmpp:invite", "urn:xmpp:ibr-token:0" },
				features({ type = "c2s_unauthed", secure = false }, { require_encryption = false }));
		end);
	end);

	describe("pre-auth", function ()
		it("keeps a valid invite on the session without using it", function ()
			local invite = assert(invites.create_account());
			local s = session();
			local r = preauth(s, invite.token);
			assert.is_true(r.handled);
			assert.is_true(r.ok);
			assert.equal(invite.token, s.validated_invite.token);
			assert.is_truthy(storage.data[""][invite.token]);
		end);

		it("answers bad tokens with item-not-found and logs them with the address", function ()
			for _, token in ipairs({ "nosuchtoken", "", ("x"):rep(10240), "tökén", "a;b" }) do
				local r = preauth(session(), token);
				assert.same({ "cancel", "item-not-found", "The invite token is invalid or expired" }, { r.type, r.condition, r.text });
			end
			local entry = logged("192%.0%.2%.1");
			assert.equal("info", entry.level);
		end);

		it("answers expired and used tokens with item-not-found", function ()
			local expired = assert(invites.create_account(nil, nil, 60));
			local used = assert(invites.create_account());
			assert(invites.get(used.token)):use();
			clock = clock + 61;
			assert.equal("item-not-found", preauth(session(), expired.token).condition);
			assert.equal("item-not-found", preauth(session(), used.token).condition);
		end);

		it("answers a missing token and a get with bad-request", function ()
			local invite = assert(invites.create_account());
			assert.equal("bad-request", preauth(session(), nil).condition);
			local s = session();
			assert.equal("bad-request", preauth(s, invite.token, "get").condition);
			assert.is_nil(s.validated_invite);
		end);

		it("leaves authenticated streams alone", function ()
			local s = session();
			s.type = "c2s";
			assert.is_nil(preauth(s, "whatever").handled);
		end);

		it("throttles an address that keeps failing, except exempt ones", function ()
			load({ invites_preauth_max_failures = 2, invites_preauth_failure_window = "1 minute", registration_whitelist = { "10.0.0.0/8" } });
			local invite = assert(invites.create_account());
			assert.equal("item-not-found", preauth(session(), "bad1").condition);
			assert.equal("item-not-found", preauth(session(), "bad2").condition);
			local r = preauth(session(), invite.token);
			assert.same({ "wait", "policy-violation" }, { r.type, r.condition });
			assert.is_true(preauth(session("192.0.2.2"), invite.token).ok, "other addresses are fine");
			for _ = 1, 5 do preauth(session("10.1.1.1"), "bad"); end
			assert.is_true(preauth(session("10.1.1.1"), invite.token).ok, "exempt");
			clock = clock + 61;
			assert.is_true(preauth(session(), invite.token).ok, "the window passed");
		end);

		it("counts IPv6 failures per /64 by default, per invites_preauth_ipv6_prefix otherwise", function ()
			load({ invites_preauth_max_failures = 2 });
			local invite = assert(invites.create_account());
			preauth(session("2001:db8:0:1::a"), "bad1");
			preauth(session("2001:db8:0:1::b"), "bad2");
			assert.equal("policy-violation", preauth(session("2001:db8:0:1::c"), invite.token).condition);
			assert.is_true(preauth(session("2001:db8:0:2::a"), invite.token).ok, "another /64");
			load({ invites_preauth_max_failures = 2, invites_preauth_ipv6_prefix = 128 });
			invite = assert(invites.create_account());
			preauth(session("2001:db8:0:1::a"), "bad1");
			preauth(session("2001:db8:0:1::b"), "bad2");
			assert.is_true(preauth(session("2001:db8:0:1::c"), invite.token).ok, "per address");
		end);

		it("exempts loopback by default", function ()
			local invite = assert(invites.create_account());
			for _ = 1, 20 do preauth(session("127.0.0.1"), "bad"); end
			assert.is_true(preauth(session("127.0.0.1"), invite.token).ok);
		end);
	end);

	describe("registration", function ()
		local function with_invite(invite)
			local s = session();
			assert.is_true(preauth(s, invite.token).ok);
			return s;
		end

		it("is invite-only by default, and depends on register_ibr then", function ()
			local ok, event = ibr(session(), "mallory");
			assert.is_false(ok);
			assert.equal("Registration on this server is through invitation only", event.reason);
			assert.equal("not-acceptable", event.error_condition);
			assert.same({ "invites", "register_ibr" }, module.depended);
		end);

		it("registers with an invite and consumes it", function ()
			local invite = assert(invites.create_account());
			assert.is_true((ibr(with_invite(invite), "alice")));
			assert.is_nil(storage.data[""]);
		end);

		it("is open without invites when registration_invite_only is false, and still honours them", function ()
			load({ registration_invite_only = false });
			assert.same({ "invites" }, module.depended);
			assert.is_true((ibr(session(), "anyone")));
			local restricted = assert(invites.create_account("bob"));
			assert.is_false((ibr(with_invite(restricted), "mallory")));
			assert.is_false((ibr(session(), "bob")), "reserved");
			assert.is_true((ibr(with_invite(restricted), "bob")));
		end);

		it("lets a restricted invite register its username only, and reserves it", function ()
			local restricted = assert(invites.create_account("bob", nil, 60));
			local open = assert(invites.create_account());
			local ok, event = ibr(with_invite(restricted), "mallory");
			assert.is_false(ok);
			assert.equal("not-acceptable", event.error_condition);
			ok, event = ibr(with_invite(open), "bob");
			assert.is_false(ok);
			assert.equal("conflict", event.error_condition);
			clock = clock + 61;
			assert.is_true((ibr(with_invite(open), "bob")), "free after the reserving invite expired");
		end);

		it("refuses a registration whose username it cannot check, and creates nothing", function ()
			load({ registration_invite_only = false });
			storage.fail_reads = true;
			local ok, event = ibr(session(), "anyone");
			assert.is_false(ok);
			assert.equal("internal-server-error", event.error_condition);
			assert.is_nil(managers.accounts.anyone);
			storage.fail_reads = false;
			assert.is_true((ibr(session(), "anyone")));
		end);

		it("lets a reset invite reset its own account only", function ()
			managers.accounts.carol = true;
			local reset = assert(invites.create_account_reset("carol"));
			assert.is_false((ibr(with_invite(reset), "mallory")));
			assert.is_nil(managers.accounts.mallory);
			assert.equal("reset", (ibr(with_invite(reset), "carol")));
			assert.is_nil(storage.data[""], "consumed by user-password-reset");
			local ghost = assert(invites.create_account_reset("ghost"));
			local ok, event = ibr(with_invite(ghost), "ghost");
			assert.is_false(ok);
			assert.equal("item-not-found", event.error_condition);
		end);

		it("creates one account per single-use invite on one stream", function ()
			local s = with_invite(assert(invites.create_account()));
			assert.is_true((ibr(s, "first")));
			assert.is_false((ibr(s, "second")));
			assert.is_nil(managers.accounts.second);
		end);

		it("lets exactly one of several validated streams register, until the holder leaves", function ()
			local invite = assert(invites.create_account());
			local a, b = with_invite(invite), with_invite(invite);
			local event = { username = "a1", host = HOST, session = a, allowed = true };
			fire("user-registering", event);
			assert.is_true(event.allowed);
			-- a's account creation is still under way: b must wait
			local ok, refused = ibr(b, "b1");
			assert.is_false(ok);
			assert.equal("not-allowed", refused.error_condition);
			-- a's stream closes without registering: the claim is released
			fake.fire_global(module, "c2s-closed", { session = a });
			assert.is_true((ibr(b, "b1")));
			assert.is_false((ibr(a, "a1")), "used now");
		end);

		it("refuses an invite used elsewhere since pre-auth, but not one that merely expired", function ()
			local invite = assert(invites.create_account(nil, nil, 60));
			local s = with_invite(invite);
			clock = clock + 120;
			local late = with_invite(assert(invites.create_account(nil, nil, 60)));
			invites.delete_account_invite(invite.token);
			assert.is_false((ibr(s, "u1")));
			-- `late` validated in time: XEP-0445 checks expiry at pre-auth only
			clock = clock + 120;
			assert.is_true((ibr(late, "u2")));
		end);

		it("grants roles given as a map or an array, stored as a map", function ()
			local as_map = assert(invites.create_account(nil, { roles = { ["prosody:admin"] = true } }));
			local as_array = assert(invites.create_account(nil, { roles = { "prosody:admin", "x" } }));
			assert.is_true((ibr(with_invite(as_map), "m")));
			assert.is_true((ibr(with_invite(as_array), "a")));
			assert.same({ ["prosody:admin"] = true }, roles.data.m);
			assert.same({ ["prosody:admin"] = true, x = true }, roles.data.a);
		end);

		it("makes the inviter of a contact invite and the new user mutual contacts", function ()
			managers.accounts.alice = true;
			local invite = assert(invites.create_contact("alice", true));
			assert.is_true((ibr(with_invite(invite), "dave")));
			assert.equal("both", managers.rosters.alice["dave@example.com"].subscription);
			assert.equal("both", managers.rosters.dave["alice@example.com"].subscription);
			assert.same({ "alice->dave@example.com" }, managers.pushes);
			assert.is_nil(storage.data.alice);
			assert.is_nil(storage.data[""]);
		end);

		it("takes the invite from the event for web registration", function ()
			local invite = assert(invites.get(assert(invites.create_account("web")).token));
			local event = { username = "web", host = HOST, ip = "192.0.2.9", validated_invite = invite, allowed = true };
			fire("user-registering", event);
			assert.is_true(event.allowed);
			fire("user-registered", { username = "web", host = HOST, validated_invite = invite });
			assert.is_nil(storage.data[""]);
			event = { username = "other", host = HOST, validated_invite = invite, allowed = true };
			fire("user-registering", event);
			assert.is_false(event.allowed);
		end);

		it("keeps the claim when consuming the invite fails, so the invite registers once", function ()
			local invite = assert(invites.create_account());
			local a, b = with_invite(invite), with_invite(invite);
			storage.fail_writes = true;
			assert.is_true((ibr(a, "first")), "the account exists; only the consume failed");
			storage.fail_writes = false;
			assert.is_truthy(storage.data[""][invite.token], "still stored: the consume failed");
			local entry = logged("Failed to consume invite");
			assert.equal("error", entry.level);
			local ok, refused = ibr(b, "second");
			assert.is_false(ok);
			assert.equal("not-allowed", refused.error_condition);
			assert.is_false((ibr(a, "third")), "not twice on the holder's stream either");
			assert.is_nil(managers.accounts.second);
			assert.is_nil(managers.accounts.third);
			-- The stream ends: the consume is retried, and the invite is gone for good.
			fake.fire_global(module, "c2s-closed", { session = a });
			assert.is_nil(storage.data[""]);
			assert.is_false((ibr(b, "second")));
		end);

		it("owes the use when storage cannot be read once the account exists, and records it later", function ()
			local invite = assert(invites.create_account());
			local a, b = with_invite(invite), with_invite(invite);
			local event = { username = "first", password = "pw", host = HOST, ip = a.ip, session = a, allowed = true };
			fire("user-registering", event);
			assert.is_true(event.allowed);
			managers.accounts.first = true;
			storage.fail_reads = true;
			fire("user-registered", { username = "first", host = HOST, source = "mod_register", session = a });
			storage.fail_reads = false;
			assert.is_truthy(storage.data[""][invite.token], "not consumed yet: the use is owed");
			assert.is_false((ibr(b, "second")), "the claim holds meanwhile");
			module.timers[1].callback();
			assert.is_nil(storage.data[""], "consumed once storage answers");
			assert.equal("used", invites.inspect(invite.token).state);
			assert.equal("first@" .. HOST, invites.inspect(invite.token).audit.uses[1].account);
		end);

		it("keeps a failed consume's claim after the stream ends while storage stays down", function ()
			local invite = assert(invites.create_account());
			local a, b = with_invite(invite), with_invite(invite);
			storage.fail_writes = true;
			assert.is_true((ibr(a, "first")));
			fake.fire_global(module, "c2s-closed", { session = a });
			storage.fail_writes = false;
			assert.is_truthy(storage.data[""][invite.token]);
			assert.is_false((ibr(b, "second")));
			-- The housekeeping timer retries it.
			module.timers[1].callback();
			assert.is_nil(storage.data[""]);
		end);

		it("answers wait/internal-server-error when it cannot tell whether the invite is still stored", function ()
			local invite = assert(invites.create_account());
			local s = with_invite(invite);
			storage.fail_reads = true;
			local ok, event = ibr(s, "dave");
			storage.fail_reads = false;
			assert.is_false(ok);
			assert.same({ "wait", "internal-server-error" }, { event.error_type, event.error_condition });
			assert.is_nil(managers.accounts.dave);
			assert.is_true((ibr(s, "dave")), "fine once storage answers again");
		end);

		it("leaves a registration refused by someone else alone", function ()
			local invite = assert(invites.create_account());
			local s = with_invite(invite);
			fire("user-registering", { username = "x", host = HOST, session = s, allowed = false });
			assert.is_true((ibr(with_invite(invite), "y")), "no claim was taken");
		end);
	end);

	describe("XEP-0379", function ()
		before_each(function ()
			managers.accounts.alice = true; -- the inviter
		end);

		local function subscribe(to, token, from)
			local presence = st.presence({ type = "subscribe", to = to, from = from or "bob@remote.example/phone" })
				:tag("preauth", { xmlns = "urn:xmpp:pars:0", token = token }):up();
			module.sent = {};
			return fire("presence/bare", { origin = {}, stanza = presence });
		end

		local function sent()
			local out = {};
			for _, stanza in ipairs(module.sent) do out[#out + 1] = stanza.attr.type or "available"; end
			return out;
		end

		it("approves a contact-only token server-side, consumes it and asks back", function ()
			local invite = assert(invites.create_contact("alice", false));
			assert.is_true(subscribe("alice@example.com", invite.token));
			assert.same({ "subscribed", "unavailable", "subscribe" }, sent());
			assert.equal("bob@remote.example", module.sent[3].attr.to);
			assert.equal("alice@example.com", module.sent[3].attr.from);
			assert.equal("from", managers.rosters.alice["bob@remote.example"].subscription);
			assert.equal("subscribe", managers.rosters.alice["bob@remote.example"].ask);
			assert.is_nil(storage.data.alice);
		end);

		it("sends the presence of online resources instead of unavailable", function ()
			local presence = st.presence({ from = "alice@example.com/pc" }):tag("show"):text("away"):up();
			module.sent = {};
			local hosts = { [HOST] = { sessions = { alice = { sessions = { pc = { full_jid = "alice@example.com/pc", presence = presence } } } },
				modules = { invites_register = true, register_ibr = true } } };
			load({}, { process_type = "prosody", hosts = hosts });
			local invite = assert(invites.create_contact("alice", true));
			assert.is_true(subscribe("alice@example.com", invite.token));
			assert.same({ "subscribed", "available", "subscribe" }, sent());
			assert.equal("bob@remote.example", module.sent[2].attr.to);
			assert.equal("alice@example.com/pc", module.sent[2].attr.from);
			assert.is_nil(presence.attr.to, "the session's presence is not touched");
		end);

		it("lets unknown, foreign, used and malformed tokens fall through untouched", function ()
			local invite = assert(invites.create_contact("alice", false));
			assert.is_nil(subscribe("carol@example.com", invite.token));
			assert.is_nil(subscribe("alice@example.com", "nosuchtoken"));
			assert.is_nil(subscribe("alice@example.com", ("x"):rep(1000)));
			assert.is_nil(subscribe("alice@example.com", nil));
			assert.same({}, sent());
			assert.is_truthy(storage.data.alice[invite.token]);
			assert.is_true(subscribe("alice@example.com", invite.token));
			assert.is_nil(subscribe("alice@example.com", invite.token, "eve@remote.example"), "used");
			assert.is_nil(managers.rosters.alice["eve@remote.example"]);
		end);

		it("ignores anything but subscribe", function ()
			local invite = assert(invites.create_contact("alice", false));
			local presence = st.presence({ type = "subscribed", to = "alice@example.com", from = "bob@remote.example" })
				:tag("preauth", { xmlns = "urn:xmpp:pars:0", token = invite.token }):up();
			assert.is_nil(fire("presence/bare", { origin = {}, stanza = presence }));
			assert.is_truthy(storage.data.alice[invite.token]);
		end);
	end);

	it("does not promise ibr=y when invitees cannot register", function ()
		local hosts = { [HOST] = { sessions = {}, modules = {} } };
		local env = fake.load_module("invites", { prosody = { process_type = "prosody", hosts = hosts } });
		assert.not_matches(";ibr=y", assert(env.create_contact("alice", true)).uri);
		hosts[HOST].modules = { invites_register = true, register_ibr = true };
		assert.matches(";ibr=y$", assert(env.create_contact("alice", true)).uri);
		hosts[HOST].modules = { invites_register = true };
		assert.not_matches(";ibr=y", assert(env.create_contact("alice", true)).uri);
	end);

	it("loads under prosodyctl without depending on anything or opening stores", function ()
		local env, mod = fake.load_module("invites_register", { prosody = { process_type = "prosodyctl" } });
		assert.same({}, mod.depended);
		assert.is_function(env.subscribe_both);
		assert.equal(0, #mod.timers);
	end);

	it("exports subscribe and subscribe_both", function ()
		register.subscribe_both(HOST, "u1", "u2");
		assert.equal("both", managers.rosters.u1["u2@example.com"].subscription);
		assert.equal("both", managers.rosters.u2["u1@example.com"].subscription);
	end);
end);
