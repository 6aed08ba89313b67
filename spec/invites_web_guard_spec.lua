-- mod_invites_web's guard (lua/invites_web_guard.lib.lua): cookies, CSRF tokens, login sessions
-- and the login throttle, with Prosody's own util libraries.
package.path = "/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;

local guard_lib = dofile("lua/invites_web_guard.lib.lua");

local function new_guard(opts)
	local o = { base_path = "/invite"; secure = false; session_idle = 1800; session_max = 43200; max_failures = 3;
		max_address_failures = 5; failure_window = 300 };
	for k, v in pairs(opts or {}) do
		o[k] = v;
	end
	return guard_lib.new(o);
end

local function request(cookie)
	return { headers = { cookie = cookie } };
end

local function response()
	return { headers = {} };
end

-- The cookies a response sets, by name: { value, attributes }.
local function set_cookies(resp)
	local found = {};
	for line in ((resp.headers.set_cookie or "") .. "\r\nSet-Cookie: "):gmatch("(.-)\r\nSet%-Cookie: ") do
		local name, value, attrs = line:match("^([^=]+)=([^;]*)(.*)$");
		found[name] = { value = value; attrs = attrs };
	end
	return found;
end

describe("invites_web guard", function ()
	it("reads cookies", function ()
		local jar = guard_lib.cookies(request("a=1; b = two ;c=3; a=ignored"));
		assert.same({ a = "1"; b = "two"; c = "3" }, jar);
		assert.same({}, guard_lib.cookies(request(nil)));
	end);

	it("sets page headers: CSP without inline script, no referrer, no store", function ()
		local resp = response();
		guard_lib.page_headers(resp);
		local csp = resp.headers.content_security_policy;
		assert.truthy(csp:find("frame-ancestors 'none'", 1, true));
		assert.falsy(csp:find("unsafe-inline", 1, true));
		assert.equal("no-referrer", resp.headers.referrer_policy);
		assert.equal("no-store", resp.headers.cache_control);
		local static = response();
		guard_lib.page_headers(static, true);
		assert.equal("public, max-age=86400", static.headers.cache_control);
	end);

	it("gives a visitor a CSRF cookie and accepts only the token made for it", function ()
		local g = new_guard();
		local req, resp = request(nil), response();
		local token = g:csrf_token(req, resp);
		local cookie = set_cookies(resp).invites_web_csrf;
		assert.truthy(cookie.attrs:find("HttpOnly", 1, true) and cookie.attrs:find("SameSite=Strict", 1, true));
		assert.truthy(cookie.attrs:find("Path=/invite", 1, true));
		assert.falsy(cookie.attrs:find("Secure", 1, true));
		local later = request("invites_web_csrf=" .. cookie.value);
		assert.is_true(g:csrf_ok(later, { csrf = token }));
		assert.is_false(g:csrf_ok(later, { csrf = token:upper() }));
		assert.is_false(g:csrf_ok(later, {}));
		assert.is_false(g:csrf_ok(request(nil), { csrf = token })); -- no cookie: another site's form
		assert.is_false(g:csrf_ok(request("invites_web_csrf=" .. ("x"):rep(24)), { csrf = token }));
		-- another guard (another server, or after a restart) does not know it
		assert.is_false(new_guard():csrf_ok(later, { csrf = token }));
	end);

	it("binds tokens of logged-in pages to the session", function ()
		local g = new_guard({ secure = true });
		local login = response();
		local session = g:start_session(login, "alice@example.com");
		local sid = set_cookies(login).invites_web_session;
		assert.truthy(sid.attrs:find("Secure", 1, true));
		local req = request("invites_web_session=" .. sid.value .. "; invites_web_csrf=" .. ("n"):rep(24));
		assert.equal(session, g:session(req));
		local token = g:csrf_token(req, response(), session);
		assert.is_true(g:csrf_ok(req, { csrf = token }, session));
		assert.is_false(g:csrf_ok(req, { csrf = token })); -- not valid without the session
		local other = g:start_session(response(), "bob@example.com");
		assert.is_false(g:csrf_ok(req, { csrf = token }, other));
		g:logout(req, response());
		assert.is_nil(g:session(req));
	end);

	it("ends idle and old sessions", function ()
		local g = new_guard();
		local resp = response();
		local session = g:start_session(resp, "alice@example.com");
		local req = request("invites_web_session=" .. set_cookies(resp).invites_web_session.value);
		session.seen = os.time() - 1801;
		assert.is_nil(g:session(req));
		local resp2 = response();
		local s2 = g:start_session(resp2, "alice@example.com");
		s2.created = os.time() - 43201;
		assert.is_nil(g:session(request("invites_web_session=" .. set_cookies(resp2).invites_web_session.value)));
		assert.is_nil(g:session(request("invites_web_session=made-up")));
	end);

	it("throttles logins per account and, more loosely, per address", function ()
		local g = new_guard();
		for _ = 1, 3 do
			assert.is_false(g:throttled("account:alice@example.com"));
			g:failed("account:alice@example.com");
		end
		assert.is_true(g:throttled("account:alice@example.com"));
		for _ = 1, 4 do
			g:failed("ip:192.0.2.1");
		end
		assert.is_false(g:throttled("ip:192.0.2.1"));
		g:failed("ip:192.0.2.1");
		assert.is_true(g:throttled("ip:192.0.2.1"));
		-- the window passes
		g.failures["ip:192.0.2.1"].first = os.time() - 301;
		assert.is_false(g:throttled("ip:192.0.2.1"));
		g.failures["account:alice@example.com"].first = os.time() - 301;
		g:sweep();
		assert.is_nil(g.failures["account:alice@example.com"]);
	end);
end);
