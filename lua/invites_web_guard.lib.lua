-- mod_invites_web: what keeps its pages safe: response headers, cookies, CSRF tokens, login
-- sessions and the login throttle. In-memory, per host; a restart logs everyone out.
local hashes = require "util.hashes";
local random = require "util.random";
local base64 = require "util.encodings".base64;

local guard = {};

local CSRF_COOKIE = "invites_web_csrf";
local SESSION_COOKIE = "invites_web_session";
local MAX_SESSIONS = 10000;

-- Every page: no script but ours, no framing, no referrer (tokens are in URLs).
local CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
	.. "base-uri 'none'; frame-ancestors 'none'";

local function urlsafe_random(bytes)
	return (base64.encode(random.bytes(bytes)):gsub("+", "-"):gsub("/", "_"):gsub("=", ""));
end

-- A guard for one module: options { base_path, secure, session_idle, session_max, max_failures
-- (per account), max_address_failures, failure_window }.
function guard.new(opts)
	local self = {
		secret = random.bytes(32);
		sessions = {};
		session_count = 0;
		failures = {};
		opts = opts;
	};
	return setmetatable(self, { __index = guard });
end

function guard.page_headers(response, cacheable)
	local headers = response.headers;
	headers.content_security_policy = CSP;
	headers.referrer_policy = "no-referrer";
	headers.x_content_type_options = "nosniff";
	headers.x_frame_options = "DENY";
	headers.cross_origin_opener_policy = "same-origin";
	headers.cache_control = cacheable and "public, max-age=86400" or "no-store";
end

function guard.cookies(request)
	local jar = {};
	for pair in (request.headers.cookie or ""):gmatch("[^;]+") do
		local name, value = pair:match("^%s*([^=%s]+)%s*=%s*(.-)%s*$");
		if name and jar[name] == nil then
			jar[name] = value;
		end
	end
	return jar;
end

function guard:set_cookie(response, name, value, max_age)
	local cookie = ("%s=%s; Path=%s; HttpOnly; SameSite=Strict"):format(name, value, self.opts.base_path);
	if max_age then
		cookie = cookie .. "; Max-Age=" .. max_age;
	end
	if self.opts.secure then
		cookie = cookie .. "; Secure";
	end
	-- Prosody writes one line per header field: a second cookie goes on a line of its own (the
	-- values are ours, never the visitor's).
	local headers = response.headers;
	headers.set_cookie = headers.set_cookie and (headers.set_cookie .. "\r\nSet-Cookie: " .. cookie) or cookie;
end

-- The logged-in session of a request, or nil.
function guard:session(request)
	local id = guard.cookies(request)[SESSION_COOKIE];
	local session = id and self.sessions[id];
	if not session then
		return nil;
	end
	local now = os.time();
	if now - session.seen > self.opts.session_idle or now - session.created > self.opts.session_max then
		self:end_session(id);
		return nil;
	end
	session.seen = now;
	return session;
end

-- A new session for `jid` (a fresh id, so no id chosen before login survives it).
function guard:start_session(response, jid)
	if self.session_count >= MAX_SESSIONS then -- forget the oldest
		local oldest_id, oldest;
		for id, session in pairs(self.sessions) do
			if not oldest or session.seen < oldest.seen then
				oldest_id, oldest = id, session;
			end
		end
		self:end_session(oldest_id);
	end
	local id = urlsafe_random(24);
	local now = os.time();
	self.sessions[id] = { id = id; jid = jid; created = now; seen = now };
	self.session_count = self.session_count + 1;
	self:set_cookie(response, SESSION_COOKIE, id);
	return self.sessions[id];
end

function guard:end_session(id)
	if id and self.sessions[id] then
		self.sessions[id] = nil;
		self.session_count = self.session_count - 1;
	end
end

function guard:logout(request, response)
	self:end_session(guard.cookies(request)[SESSION_COOKIE]);
	self:set_cookie(response, SESSION_COOKIE, "", 0);
end

-- The CSRF token for forms on this page: bound to the visitor's CSRF cookie (set here when
-- missing, SameSite=Strict so no other site's form carries it) and to their login session.
function guard:csrf_token(request, response, session)
	local nonce = guard.cookies(request)[CSRF_COOKIE];
	if not nonce or not nonce:match("^[%w_-]+$") or #nonce < 16 then
		nonce = urlsafe_random(18);
		self:set_cookie(response, CSRF_COOKIE, nonce);
		request.headers.cookie = (request.headers.cookie and request.headers.cookie .. "; " or "")
			.. CSRF_COOKIE .. "=" .. nonce;
	end
	return hashes.hmac_sha256(self.secret, nonce .. "|" .. (session and session.id or ""), true);
end

-- Whether a submitted form carries the right CSRF token.
function guard:csrf_ok(request, form, session)
	local nonce = guard.cookies(request)[CSRF_COOKIE];
	local given = form and form.csrf;
	if not nonce or type(given) ~= "string" then
		return false;
	end
	local expected = hashes.hmac_sha256(self.secret, nonce .. "|" .. (session and session.id or ""), true);
	return #given == #expected and hashes.equals(given, expected);
end

-- Login throttle: failures per key ("ip:ADDRESS", "account:JID") within failure_window.
function guard:throttled(key)
	local entry = self.failures[key];
	if not entry then
		return false;
	end
	if os.time() - entry.first > self.opts.failure_window then
		self.failures[key] = nil;
		return false;
	end
	local limit = key:match("^ip:") and self.opts.max_address_failures or self.opts.max_failures;
	return entry.count >= limit;
end

function guard:failed(key)
	local now = os.time();
	local entry = self.failures[key];
	if not entry or now - entry.first > self.opts.failure_window then
		entry = { count = 0; first = now };
		self.failures[key] = entry;
	end
	entry.count = entry.count + 1;
end

-- Forget expired entries (a timer calls this).
function guard:sweep()
	local now = os.time();
	for key, entry in pairs(self.failures) do
		if now - entry.first > self.opts.failure_window then
			self.failures[key] = nil;
		end
	end
	for id, session in pairs(self.sessions) do
		if now - session.seen > self.opts.session_idle or now - session.created > self.opts.session_max then
			self:end_session(id);
		end
	end
end

return guard;
