-- The invitation web, built in: a landing page for every invite, web sign-up and password reset,
-- "My invites" for every user and an admin page, on Prosody's own HTTP server.
--
--   GET  /invite?TOKEN              the landing page (a neutral page for any invite not valid)
--   GET  /invite/register?TOKEN     sign-up form      POST /invite/register: create the account
--   GET  /invite/reset?TOKEN        new password form POST /invite/reset: change the password
--   GET  /invite/me                 log in / my invites; POST /me/login, /me/logout, /me/create, /me/revoke
--   GET  /invite/admin              every invite (admins); GET /admin/invite?t=TOKEN; POST /admin/create,
--                                   /admin/revoke, /admin/revoke_by
--   GET  /invite/static/*           the stylesheet and the script
--
-- Tokens travel in query strings and form bodies, never in paths: Prosody logs request paths.
--
-- Accounts are created and passwords reset the way mod_invites_register_web does: the validated
-- invite goes through "user-registering" (mod_invites_register decides every rule), then
-- usermanager, then "user-registered" / "user-password-reset". Contact invites come from
-- mod_invites_adhoc's policy and quota; admin creation from the admin shell's verbs.
local usermanager = require "core.usermanager";
local modulemanager = require "core.modulemanager";
local http_formdecode = require "net.http".formdecode;
local urlencode = require "util.http".urlencode;
local url_parse = require "socket.url".parse;
local nodeprep = require "util.encodings".stringprep.nodeprep;
local json = require "util.json";
local new_id = require "util.id".short;

local core = module:require "invites_native";
local html = module:require "invites_web_html";
local esc = html.esc;

local site_name = module:get_option_string("site_name", module.host);
local APP_NAME, DEFAULT_PATH = "invites_web", "/invite";

-- The module's public URL (http_external_url and http_paths honoured), no trailing slash.
local function base_url()
	return (module:http_url(APP_NAME, DEFAULT_PATH):gsub("/$", ""));
end

local function landing_url(token)
	return base_url() .. "?" .. token;
end

-- Every new invite's landing page is ours, unless a module set one or `invites_page` names one.
local function add_landing_page(invite)
	if invite.landing_page or module:get_option_string("invites_page") or not module.http_url then
		return;
	end
	invite.landing_page = landing_url(invite.token);
end

if prosody.process_type ~= "prosody" then
	-- prosodyctl (`mod_invites generate`): the URL is known only from http_external_url.
	if module:get_option_string("http_external_url") then
		module:depends("http");
		module:hook("invite-created", add_landing_page);
	end
	return;
end

module:depends("http");
local invites = module:depends("invites");
local adhoc = module:depends("invites_adhoc");
local admin_verbs = module:require("invites_admin").verbs;
local assets = module:require "invites_web_assets";
local guard_lib = module:require "invites_web_guard";

module:hook("invite-created", add_landing_page);

-- The path of our pages as browsers see them (with http_external_url's prefix); without any
-- HTTP port mod_http answers http://disabled.invalid/, whose path says nothing.
local function our_path()
	local url = url_parse(base_url());
	if url.host == "disabled.invalid" then
		local paths = module:get_option("http_paths", {});
		return type(paths) == "table" and type(paths[APP_NAME]) == "string" and paths[APP_NAME] or DEFAULT_PATH;
	end
	return url.path or "";
end
local base_path = our_path():gsub("/$", "");

local guard = guard_lib.new({
	base_path = base_path == "" and "/" or base_path;
	secure = base_url():match("^https:") ~= nil;
	session_idle = module:get_option_number("invites_web_session_idle", 1800);
	session_max = module:get_option_number("invites_web_session_lifetime", 12 * 3600);
	max_failures = module:get_option_number("invites_web_login_max_failures", 5); -- per account
	max_address_failures = module:get_option_number("invites_web_login_max_failures_per_address", 20);
	failure_window = module:get_option_number("invites_web_login_failure_window", 300);
});
module:add_timer(60, function ()
	guard:sweep();
	return 60;
end);

--- Languages

local catalogues = {
	en = module:require "invites_web_i18n_en";
	de = module:require "invites_web_i18n_de";
};
local default_lang = module:get_option_string("invites_web_default_language", "en");
if not catalogues[default_lang] then
	module:log("error", "invites_web_default_language: no catalogue %q; using English", default_lang);
	default_lang = "en";
end

-- The best language of Accept-Language we have a catalogue for.
local function pick_language(header)
	local best, best_q = default_lang, -1;
	for part in (header or ""):gmatch("[^,]+") do
		local tag, q = part:match("^%s*([%a%-]+)%s*;%s*q%s*=%s*([%d.]+)");
		tag = tag or part:match("^%s*([%a%-]+)");
		q = tonumber(q) or 1;
		local primary = tag and tag:match("^(%a+)"):lower();
		if primary and catalogues[primary] and q > best_q then
			best, best_q = primary, q;
		end
	end
	return best;
end

local function translator(lang)
	local catalogue, english = catalogues[lang], catalogues.en;
	return function (key, vars)
		local text = catalogue[key] or english[key];
		if not text then
			return esc(key);
		end
		return (text:gsub("{(%w+)}", function (name)
			return esc(vars and vars[name]);
		end));
	end;
end

--- Client list

local function load_apps()
	local file = module:get_option_string("invites_web_apps_file");
	if file then
		local f, err = io.open(file);
		local list = f and json.decode(f:read("*a"));
		if f then
			f:close();
		end
		if type(list) == "table" and list[1] then
			return list;
		end
		module:log("error", "invites_web_apps_file %s: %s; using the default list", file, err or "not a JSON list of apps");
	end
	local configured = module:get_option("invites_web_apps");
	if type(configured) == "table" and configured[1] then
		return configured;
	end
	return module:require "invites_web_apps";
end
local apps = load_apps();

local PLATFORMS = { "android", "ios", "macos", "windows", "linux", "web" };

local function platform_of(user_agent)
	local ua = user_agent or "";
	if ua:find("Android", 1, true) then
		return "android";
	elseif ua:find("iPhone", 1, true) or ua:find("iPad", 1, true) or ua:find("iPod", 1, true) then
		return "ios";
	elseif ua:find("Macintosh", 1, true) or ua:find("Mac OS X", 1, true) then
		return "macos";
	elseif ua:find("Windows", 1, true) then
		return "windows";
	elseif ua:find("Linux", 1, true) or ua:find("X11", 1, true) or ua:find("CrOS", 1, true) then
		return "linux";
	end
	return nil;
end

local function app_links(ctx, app, uri)
	local out = {};
	for _, link in ipairs(type(app.links) == "table" and app.links or {}) do
		local url = tostring(link.url or "");
		if url:match("^https://") then
			local note = "";
			if link.referrer and uri then
				url = url .. (url:find("?", 1, true) and "&" or "?") .. "referrer=" .. urlencode(uri);
				note = ' <span class="help">' .. ctx.t("store_referrer") .. "</span>";
			end
			out[#out + 1] = ('<li><a href="%s">%s</a>%s</li>'):format(esc(url), esc(link.label or url), note);
		end
	end
	return out;
end

local function apps_section(ctx, platform, uri)
	local order = { platform };
	for _, p in ipairs(PLATFORMS) do
		if p ~= platform then
			order[#order + 1] = p;
		end
	end
	local out = { ('<section class="apps" id="apps" data-platform="%s" aria-labelledby="apps-h"><h2 id="apps-h">%s</h2>'):format(
		esc(platform or ""), ctx.t("apps_heading")) };
	for _, p in ipairs(order) do
		local items = {};
		for _, app in ipairs(apps) do
			for _, ap in ipairs(type(app.platforms) == "table" and app.platforms or {}) do
				if ap == p then
					local links = app_links(ctx, app, uri);
					items[#items + 1] = ('<div class="app"><h3>%s</h3><p>%s</p><ul class="links">%s</ul></div>'):format(
						esc(app.name), esc(app.text), table.concat(links));
				end
			end
		end
		if items[1] then
			local mine = p == platform;
			out[#out + 1] = ('<details data-platform="%s"%s><summary>%s</summary>%s</details>'):format(p,
				mine and ' class="platform-mine" open' or "", ctx.t("apps_for_you", { platform = ctx.t("platform_" .. p) }),
				table.concat(items));
		end
	end
	out[#out + 1] = "</section>";
	return table.concat(out);
end

--- Requests and responses

local function context(event, session)
	local request = event.request;
	local lang = pick_language(request.headers.accept_language);
	local ctx = { lang = lang; t = translator(lang); base = base_path; site = site_name; session = session };
	ctx.csrf = guard:csrf_token(request, event.response, session);
	ctx.nav = { { base_path .. "/me", ctx.t("me_link") } };
	if session and adhoc.web_is_manager(session.jid) then
		ctx.nav[2] = { base_path .. "/admin", ctx.t("admin_link") };
	end
	return ctx;
end

local function page(event, ctx, status, title, body)
	local response = event.response;
	guard.page_headers(response);
	response.headers.content_type = "text/html; charset=utf-8";
	response.headers.content_language = ctx.lang;
	response.status_code = status or 200;
	return html.layout(ctx, title, body);
end

local function redirect(event, path)
	guard.page_headers(event.response);
	event.response.status_code = 303;
	event.response.headers.location = base_path .. path; -- always our own path: no open redirect
	return "";
end

local function invalid_page(event)
	local ctx = context(event);
	return page(event, ctx, 404, ctx.t("invalid_title"), html.p(ctx.t("invalid_text")));
end

local function refused(event, ctx, what)
	ctx = ctx or context(event);
	return page(event, ctx, 403, ctx.t(what .. "_title"), html.p(ctx.t(what .. "_text")));
end

local function form_of(event)
	local body = event.request.body;
	return type(body) == "string" and #body > 0 and http_formdecode(body) or {};
end

local function query_of(event)
	local query = event.request.url.query;
	return query and http_formdecode(query) or {};
end

local function field(form, name)
	local value = form[name];
	return type(value) == "string" and value:match("^%s*(.-)%s*$") or nil;
end

local function qr(ctx, text)
	return core.qr_svg(text, ctx.t("qr_title"));
end

--- The landing page

local function kind_of(invite)
	local data = type(invite.additional_data) == "table" and invite.additional_data or {};
	if data.allow_reset then
		return "reset", data;
	elseif invite.type == "register" then
		return invite.inviter and "account-and-contact" or "account", data;
	end
	return invite.allow_registration and "account-and-contact" or "contact", data;
end

local function reset_account(_, data)
	return tostring(data.allow_reset) .. "@" .. module.host;
end

local function explanation(ctx, invite, kind, data)
	local vars = { site = site_name; inviter = invite.inviter and (invite.inviter .. "@" .. module.host); jid = invite.jid };
	if kind == "reset" then
		vars.jid = reset_account(invite, data);
		return html.p(ctx.t("invite_reset", vars));
	elseif kind == "contact" then
		vars.inviter = invite.jid;
		return html.p(ctx.t("invite_contact", vars));
	elseif kind == "account-and-contact" and invite.type == "roster" then
		vars.inviter = invite.jid;
		return html.p(ctx.t("invite_contact", vars)) .. html.p(ctx.t("invite_contact_ibr", vars));
	elseif kind == "account-and-contact" then
		return html.p(ctx.t("invite_account_contact", vars));
	elseif invite.username then
		vars.jid = invite.username .. "@" .. module.host;
		return html.p(ctx.t("invite_account_named", vars));
	end
	return html.p(ctx.t("invite_account", vars));
end

local function rooms_list(ctx, data)
	if type(data.rooms) ~= "table" or not data.rooms[1] then
		return "";
	end
	local items = {};
	for _, room in ipairs(data.rooms) do
		items[#items + 1] = "<li>" .. esc(type(room) == "table" and room.jid or room) .. "</li>";
	end
	return html.p(ctx.t("invite_rooms")) .. "<ul>" .. table.concat(items) .. "</ul>";
end

local function valid_invite(token)
	if type(token) ~= "string" or not core.check_token(token) then
		return nil;
	end
	return invites.get(token);
end

local function landing_page(event, token)
	local invite = valid_invite(token);
	if not invite then
		return invalid_page(event);
	end
	local ctx = context(event);
	local kind, data = kind_of(invite);
	local platform = platform_of(event.request.headers.user_agent);
	local body = {
		explanation(ctx, invite, kind, data),
		rooms_list(ctx, data),
		('<p><a class="button big" href="%s">%s</a></p>'):format(esc(invite.uri), ctx.t("open_button")),
		html.p(ctx.t("open_help"), "help"),
	};
	if kind == "reset" then
		body[#body + 1] = ('<p><a class="button secondary" href="%s/reset?%s">%s</a></p>'):format(esc(base_path), esc(token),
			ctx.t("web_reset"));
	elseif invite.allow_registration then
		body[#body + 1] = ('<p><a class="button secondary" href="%s/register?%s">%s</a></p>'):format(esc(base_path), esc(token),
			ctx.t("web_signup"));
	end
	if platform ~= "android" and platform ~= "ios" then
		body[#body + 1] = ('<section class="card desktop-only" aria-labelledby="qr-h"><h2 id="qr-h">%s</h2>%s<div class="qr">%s</div></section>')
			:format(ctx.t("qr_heading"), html.p(ctx.t("qr_help"), "help"), qr(ctx, landing_url(token)) or "");
	end
	body[#body + 1] = apps_section(ctx, platform, invite.uri);
	event.response.headers.link = ('<%s>; rel="alternate"'):format(invite.uri);
	return page(event, ctx, 200, ctx.t("invite_title", { site = site_name }), table.concat(body));
end

--- Web sign-up and password reset (the rules: mod_invites_register, through the events)

-- The password policy of mod_password_policy, when the host loads it (looked up per request:
-- it may load after this module).
local function password_policy()
	local policy = modulemanager.get_module(module.host, "password_policy");
	return type(policy) == "table" and type(policy.check_password) == "function" and policy or nil;
end

local function policy_length()
	local policy = password_policy();
	local settings = policy and policy.get_policy and policy.get_policy();
	return type(settings) == "table" and tonumber(settings.length) or nil;
end

local function check_password(password, username)
	local policy = password_policy();
	if not policy then
		return true;
	end
	return policy.check_password(password, { username = username });
end

local function password_fields(ctx)
	local length = policy_length();
	return html.input("password", ctx.t("password"), { type = "password"; autocomplete = "new-password"; required = true;
		help = length and ctx.t("password_help", { length = length }) })
		.. html.input("password2", ctx.t("password_again"), { type = "password"; autocomplete = "new-password"; required = true });
end

-- The name an account invite is restricted to (a contact invite's `username` is its inviter).
local function fixed_username(invite)
	return invite.type == "register" and invite.username or nil;
end

local function signup_form(event, ctx, token, invite, err, username)
	local fields;
	if fixed_username(invite) then
		fields = ('<p>%s: <span class="fixed">%s@%s</span></p>'):format(ctx.t("username_fixed"), esc(invite.username), esc(module.host))
			.. html.hidden("username", invite.username);
	else
		fields = html.input("username", ctx.t("username"), { value = username; autocomplete = "username"; required = true;
			help = ctx.t("username_help", { host = module.host }) });
	end
	local body = html.p(ctx.t("signup_intro", { site = site_name })) .. html.error(err)
		.. html.form(ctx, base_path .. "/register", html.hidden("token", token) .. fields .. password_fields(ctx),
			ctx.t("signup_submit"));
	return page(event, ctx, err and 400 or 200, ctx.t("signup_title"), body);
end

local function reset_form(event, ctx, token, invite, err)
	local _, data = kind_of(invite);
	local body = html.p(ctx.t("reset_intro", { jid = reset_account(invite, data) })) .. html.error(err)
		.. html.form(ctx, base_path .. "/reset", html.hidden("token", token) .. password_fields(ctx), ctx.t("reset_submit"));
	return page(event, ctx, err and 400 or 200, ctx.t("reset_title"), body);
end

local function success_page(event, ctx, title, text, platform)
	return page(event, ctx, 200, title, html.p(text, "ok") .. apps_section(ctx, platform, nil));
end

-- Asks the registration rules (mod_invites_register and any other handler) about `username`.
local function registering(invite, username, ip)
	local event = { validated_invite = invite; username = username; host = module.host; ip = ip; allowed = true };
	module:fire_event("user-registering", event);
	return event;
end

local function handle_signup(event)
	local ctx = context(event);
	local form = form_of(event);
	local token = field(form, "token");
	if not guard:csrf_ok(event.request, form) then
		return refused(event, ctx, "csrf");
	end
	local invite = valid_invite(token);
	if not invite or not invite.allow_registration or kind_of(invite) == "reset" then
		return invalid_page(event);
	end
	local raw, password = field(form, "username"), form.password;
	if fixed_username(invite) then
		raw = fixed_username(invite);
	end
	if not raw or raw == "" or type(password) ~= "string" or password == "" then
		return signup_form(event, ctx, token, invite, ctx.t("err_fill_all"), raw);
	elseif password ~= form.password2 then
		return signup_form(event, ctx, token, invite, ctx.t("err_password_mismatch"), raw);
	end
	local username = nodeprep(raw);
	if not username or username == "" then
		return signup_form(event, ctx, token, invite, ctx.t("err_username_invalid"), raw);
	elseif usermanager.user_exists(username, module.host) then
		return signup_form(event, ctx, token, invite, ctx.t("err_username_taken"), raw);
	end
	local pw_ok, pw_err = check_password(password, username);
	if not pw_ok then
		return signup_form(event, ctx, token, invite, esc(pw_err), raw);
	end
	local ip = event.request.ip;
	local decision = registering(invite, username, ip);
	if not decision.allowed then
		return signup_form(event, ctx, token, invite, esc(decision.reason or ctx.t("err_refused")), raw);
	end
	local ok, err = usermanager.create_user(username, password, module.host);
	if not ok then
		local err_id = new_id();
		module:log("warn", "Web registration of %s with invite %s failed (%s): %s", username, core.redact(token), err_id, tostring(err));
		return signup_form(event, ctx, token, invite, ctx.t("err_failed", { id = err_id }), raw);
	end
	module:log("info", "Registered %s through the web with invite %s", username, core.redact(token));
	module:fire_event("user-registered", {
		username = username; host = module.host; source = "mod_" .. module.name; validated_invite = invite; ip = ip;
	});
	local jid = username .. "@" .. module.host;
	return success_page(event, ctx, ctx.t("signup_done_title"), ctx.t("signup_done", { jid = jid }),
		platform_of(event.request.headers.user_agent));
end

local function handle_reset(event)
	local ctx = context(event);
	local form = form_of(event);
	local token = field(form, "token");
	if not guard:csrf_ok(event.request, form) then
		return refused(event, ctx, "csrf");
	end
	local invite = valid_invite(token);
	local kind, data;
	if invite then
		kind, data = kind_of(invite);
	end
	if kind ~= "reset" then
		return invalid_page(event);
	end
	local password = form.password;
	if type(password) ~= "string" or password == "" then
		return reset_form(event, ctx, token, invite, ctx.t("err_fill_all"));
	elseif password ~= form.password2 then
		return reset_form(event, ctx, token, invite, ctx.t("err_password_mismatch"));
	end
	local username = tostring(data.allow_reset);
	local pw_ok, pw_err = check_password(password, username);
	if not pw_ok then
		return reset_form(event, ctx, token, invite, esc(pw_err));
	end
	local ip = event.request.ip;
	local decision = registering(invite, username, ip);
	if not decision.allowed or decision.allow_reset ~= username then
		return reset_form(event, ctx, token, invite, esc(decision.reason or ctx.t("err_refused")));
	end
	local ok, err = usermanager.set_password(username, password, module.host);
	if not ok then
		local err_id = new_id();
		module:log("warn", "Web password reset of %s failed (%s): %s", username, err_id, tostring(err));
		return reset_form(event, ctx, token, invite, ctx.t("err_failed", { id = err_id }));
	end
	module:log("info", "Reset the password of %s through the web with invite %s", username, core.redact(token));
	module:fire_event("user-password-reset", { username = username; host = module.host; validated_invite = invite; ip = ip });
	return success_page(event, ctx, ctx.t("reset_done_title"), ctx.t("reset_done", { jid = username .. "@" .. module.host }),
		platform_of(event.request.headers.user_agent));
end

-- The token of a GET: the whole query string (`?TOKEN`, as mod_invites_page has it).
local function query_token(event)
	return event.request.url.query;
end

local function landing_or_home(event)
	local token = query_token(event);
	if not token or token == "" then
		return redirect(event, "/me");
	end
	return landing_page(event, token);
end

local function signup_page(event)
	local token = query_token(event);
	local invite = valid_invite(token);
	if not invite or not invite.allow_registration or kind_of(invite) == "reset" then
		return invalid_page(event);
	end
	return signup_form(event, context(event), token, invite);
end

local function reset_page(event)
	local token = query_token(event);
	local invite = valid_invite(token);
	if not invite or kind_of(invite) ~= "reset" then
		return invalid_page(event);
	end
	return reset_form(event, context(event), token, invite);
end

--- My invites and the admin page

local pages = module:require "invites_web_pages";
pages.init({
	invites = invites; adhoc = adhoc; admin_verbs = admin_verbs; guard = guard; core = core; html = html;
	context = context; page = page; redirect = redirect; refused = refused; form_of = form_of; query_of = query_of;
	field = field; qr = qr; landing_url = landing_url; base_path = base_path; kind_of = kind_of;
});

--- Static assets

local function static(event, name)
	local body = assets[name];
	if type(body) ~= "string" then
		event.response.status_code = 404;
		return "";
	end
	guard.page_headers(event.response, true);
	event.response.headers.content_type = assets.types[name:match("%.(%a+)$")];
	return body;
end

module:provides("http", {
	name = APP_NAME;
	default_path = DEFAULT_PATH;
	cors = { enabled = false }; -- pages for people, not an API for other sites
	route = {
		["GET"] = landing_or_home;
		["GET /register"] = signup_page;
		["POST /register"] = handle_signup;
		["GET /reset"] = reset_page;
		["POST /reset"] = handle_reset;
		["GET /static/*"] = static;
		["GET /me"] = pages.me;
		["POST /me/login"] = pages.login;
		["POST /me/logout"] = pages.logout;
		["POST /me/create"] = pages.create_contact;
		["POST /me/revoke"] = pages.revoke_mine;
		["GET /admin"] = pages.admin;
		["GET /admin/invite"] = pages.admin_invite;
		["POST /admin/create"] = pages.admin_create;
		["POST /admin/revoke"] = pages.admin_revoke;
		["POST /admin/revoke_by"] = pages.admin_revoke_by;
		["GET /"] = landing_or_home;
	};
});
