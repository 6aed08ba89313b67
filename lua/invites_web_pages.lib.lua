-- mod_invites_web: "My invites" (every local account) and the admin page (the host's admins).
-- Log in with address and password (throttled per address and per account), a session cookie,
-- every form with its CSRF token. Contact invites come from mod_invites_adhoc (the same policy,
-- quota and refusal texts as the ad-hoc command), admin invites from the admin shell's verbs.
local usermanager = require "core.usermanager";
local jid_split = require "util.jid".split;
local jid_prep = require "util.jid".prep;
local codes = module:require "invites_native".codes;

local pages = {};
local w; -- what mod_invites_web hands over (pages.init)
local esc;

function pages.init(with)
	w = with;
	esc = with.html.esc;
end

local STATES = { "pending", "used", "expired", "revoked" };
local KINDS = { "account", "account-and-contact", "contact", "reset" };
local MAX_ROWS = 500;

local function logged_in(event)
	return w.guard:session(event.request);
end

-- The session and the submitted form of a POST, or nil and the refusal page.
local function checked_post(event, need_admin)
	local session = logged_in(event);
	local form = w.form_of(event);
	if not session then
		return nil, w.redirect(event, "/me");
	end
	if not w.guard:csrf_ok(event.request, form, session) then
		return nil, w.refused(event, nil, "csrf");
	end
	if need_admin and not w.adhoc.web_is_manager(session.jid) then
		module:log("warn", "Refused an admin action by %s (not an admin)", session.jid);
		return nil, w.refused(event, w.context(event, session), codes.forbidden);
	end
	return session, form;
end

local function state_text(ctx, item)
	local text = ctx.t("state_" .. tostring(item.state));
	local users = {};
	for _, use in ipairs(item.audit.uses or {}) do
		users[#users + 1] = tostring(use.account);
	end
	if users[1] then
		text = text .. " (" .. ctx.t("used_by", { who = table.concat(users, ", ") }) .. ")";
	end
	return text;
end

local function kind_text(ctx, kind)
	return ctx.t("kind_" .. tostring(kind));
end

--- My invites

local function login_page(event, ctx, err, status)
	local body = w.html.p(ctx.t("login_intro")) .. w.html.error(err)
		.. w.html.form(ctx, w.base_path .. "/me/login",
			w.html.input("jid", ctx.t("address"), { autocomplete = "username"; required = true })
			.. w.html.input("password", ctx.t("password"), { type = "password"; autocomplete = "current-password"; required = true }),
			ctx.t("login_submit"));
	return w.page(event, ctx, status or 200, ctx.t("login_title"), body);
end

local function logout_form(ctx, session)
	return w.html.p(ctx.t("logged_in_as", { jid = session.jid }))
		.. w.html.form(ctx, w.base_path .. "/me/logout", "", ctx.t("logout"), { button = "secondary" });
end

local function my_invites_page(event, session, ctx, extra)
	local all = w.invites.all_invites() or {};
	local rows = {};
	for _, item in ipairs(all) do
		if item.audit.creator == session.jid then
			local actions = "";
			if item.state == "pending" then
				actions = ('<a class="link" href="%s">%s</a> '):format(esc(w.landing_url(item.token)), ctx.t("invite_link"))
					.. w.html.form(ctx, w.base_path .. "/me/revoke", w.html.hidden("token", item.token), ctx.t("revoke"),
						{ inline = true; button = "danger" });
			end
			rows[#rows + 1] = ("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>"):format(kind_text(ctx, item.audit.kind),
				state_text(ctx, item), w.html.date(item.audit.expires), actions);
		end
	end
	local body = {
		logout_form(ctx, session),
		extra or "",
		'<section class="card" aria-labelledby="create-h"><h2 id="create-h">', ctx.t("create_contact"), "</h2>",
		w.html.p(ctx.t("create_contact_help"), "help"),
		w.html.form(ctx, w.base_path .. "/me/create", "", ctx.t("create_contact")),
		"</section>",
		'<section aria-labelledby="list-h"><h2 id="list-h">', ctx.t("my_list"), "</h2>",
	};
	if rows[1] then
		body[#body + 1] = ('<table class="responsive"><thead><tr><th scope="col">%s</th><th scope="col">%s</th>'
			.. '<th scope="col">%s</th><th scope="col"><span class="skip">%s</span></th></tr></thead><tbody>%s</tbody></table>'):format(
			ctx.t("kind"), ctx.t("state"), ctx.t("expires"), ctx.t("revoke"), table.concat(rows));
	else
		body[#body + 1] = w.html.p(ctx.t("none"));
	end
	body[#body + 1] = "</section>";
	return w.page(event, ctx, 200, ctx.t("me_title"), table.concat(body));
end

function pages.me(event)
	local session = logged_in(event);
	local ctx = w.context(event, session);
	if not session then
		return login_page(event, ctx);
	end
	return my_invites_page(event, session, ctx);
end

function pages.login(event)
	local ctx = w.context(event);
	local form = w.form_of(event);
	if not w.guard:csrf_ok(event.request, form) then
		return w.refused(event, ctx, "csrf");
	end
	local ip = "ip:" .. tostring(event.request.ip);
	local jid = jid_prep(w.field(form, "jid") or "");
	local username, host;
	if jid then
		username, host = jid_split(jid);
	end
	local account = "account:" .. tostring(jid);
	if w.guard:throttled(ip) or (jid and w.guard:throttled(account)) then
		module:log("info", "Throttled a web login for %s from %s", tostring(jid), tostring(event.request.ip));
		return login_page(event, ctx, ctx.t("login_throttled"), 429);
	end
	local password = form.password;
	if not username or host ~= module.host or type(password) ~= "string"
		or not usermanager.test_password(username, module.host, password) then
		w.guard:failed(ip);
		if jid then
			w.guard:failed(account);
		end
		module:log("info", "Failed web login for %s from %s", tostring(jid), tostring(event.request.ip));
		return login_page(event, ctx, ctx.t("login_failed"), 403);
	end
	w.guard:start_session(event.response, username .. "@" .. host);
	return w.redirect(event, "/me");
end

function pages.logout(event)
	local session = logged_in(event);
	local form = w.form_of(event);
	if session and not w.guard:csrf_ok(event.request, form, session) then
		return w.refused(event, nil, "csrf");
	end
	w.guard:logout(event.request, event.response);
	return w.redirect(event, "/me");
end

-- A new invite with its link and QR code, then the page it was made from.
local function created_card(ctx, link, title)
	return ('<section class="card" aria-labelledby="new-h"><h2 id="new-h">%s</h2>%s</section>'):format(esc(title),
		w.html.share(ctx, link, w.qr(ctx, link)));
end

function pages.create_contact(event)
	local session, form_or_page = checked_post(event);
	if not session then
		return form_or_page;
	end
	local ctx = w.context(event, session);
	local invite, why = w.adhoc.web_contact_invite(session.jid);
	if not invite then
		return my_invites_page(event, session, ctx, w.html.error(esc(why)));
	end
	module:log("info", "%s created a contact invite %s on the web", session.jid, w.core.redact(invite.token));
	local link = invite.landing_page or invite.uri;
	return my_invites_page(event, session, ctx, created_card(ctx, link, ctx.t("new_invite")));
end

function pages.revoke_mine(event)
	local session, form = checked_post(event);
	if not session then
		return form;
	end
	local found = w.invites.inspect(w.field(form, "token"));
	if found and found.state == "pending" and found.audit.creator == session.jid then
		w.invites.delete_account_invite(found.token, session.jid);
		module:log("info", "%s revoked invite %s on the web", session.jid, w.core.redact(found.token));
	end
	return w.redirect(event, "/me");
end

--- The admin page

local function admin_session(event)
	local session = logged_in(event);
	if not session then
		return nil, w.redirect(event, "/me");
	end
	if not w.adhoc.web_is_manager(session.jid) then
		return nil, w.refused(event, w.context(event, session), codes.forbidden);
	end
	return session;
end

local function options_of(ctx, values, prefix)
	local list = { { "", ctx.t("filter_any") } };
	for _, v in ipairs(values) do
		list[#list + 1] = { v, ctx.t(prefix .. v) };
	end
	return list;
end

local function create_form(ctx)
	local h = w.html;
	return '<section class="card" aria-labelledby="create-h"><h2 id="create-h">' .. ctx.t("create_heading") .. "</h2>"
		.. h.form(ctx, w.base_path .. "/admin/create",
			h.select("kind", ctx.t("create_kind"), { { "account", ctx.t("create_account_opt") }, { "group", ctx.t("create_group_opt") },
				{ "reset", ctx.t("create_reset_opt") } }, "account")
			.. h.input("username", ctx.t("create_username"))
			.. h.input("roles", ctx.t("create_roles"))
			.. h.input("groups", ctx.t("create_groups"))
			.. h.input("uses", ctx.t("create_uses"), { type = "number" })
			.. h.input("expires", ctx.t("create_expires"))
			.. h.input("rooms", ctx.t("create_rooms"))
			.. h.input("note", ctx.t("create_note")),
			ctx.t("create_submit"))
		.. "</section>";
end

local function admin_page(event, session, ctx, extra)
	local query = w.query_of(event);
	local kind, state, creator = w.field(query, "kind") or "", w.field(query, "state") or "", w.field(query, "creator") or "";
	local all = w.invites.all_invites() or {};
	local rows, shown, total = {}, 0, 0;
	for _, item in ipairs(all) do
		local audit = item.audit;
		if (kind == "" or audit.kind == kind) and (state == "" or item.state == state)
			and (creator == "" or tostring(audit.creator) == creator) then
			total = total + 1;
			if shown < MAX_ROWS then
				shown = shown + 1;
				local revoke = item.state == "pending" and w.html.form(ctx, w.base_path .. "/admin/revoke",
					w.html.hidden("token", item.token), ctx.t("revoke"), { inline = true; button = "danger" }) or "";
				rows[#rows + 1] = ('<tr><td><a href="%s/admin/invite?t=%s">%s…</a></td><td>%s</td><td>%s</td><td>%s</td>'
					.. "<td>%s</td><td>%s</td></tr>"):format(esc(w.base_path), esc(item.token), esc(item.token:sub(1, 6)),
					kind_text(ctx, audit.kind), esc(audit.creator), state_text(ctx, item), w.html.date(audit.expires), revoke);
			end
		end
	end
	local h = w.html;
	local body = {
		logout_form(ctx, session),
		extra or "",
		('<form method="get" action="%s/admin" class="filters" role="search">'):format(esc(w.base_path)),
		"<div>", h.select("kind", ctx.t("kind"), options_of(ctx, KINDS, "kind_"), kind), "</div>",
		"<div>", h.select("state", ctx.t("state"), options_of(ctx, STATES, "state_"), state), "</div>",
		"<div>", h.input("creator", ctx.t("creator"), { value = creator }), "</div>",
		'<div><button type="submit">', ctx.t("filter"), "</button></div></form>",
		h.p(ctx.t("total", { n = total })),
	};
	if rows[1] then
		body[#body + 1] = ('<table class="responsive"><thead><tr><th scope="col">%s</th><th scope="col">%s</th><th scope="col">%s</th>'
			.. '<th scope="col">%s</th><th scope="col">%s</th><th scope="col"><span class="skip">%s</span></th></tr></thead>'
			.. "<tbody>%s</tbody></table>"):format(ctx.t("token"), ctx.t("kind"), ctx.t("creator"), ctx.t("state"), ctx.t("expires"),
			ctx.t("revoke"), table.concat(rows));
	end
	body[#body + 1] = create_form(ctx);
	body[#body + 1] = '<section class="card" aria-labelledby="revoke-by-h"><h2 id="revoke-by-h">' .. ctx.t("revoke_by") .. "</h2>"
		.. h.form(ctx, w.base_path .. "/admin/revoke_by", h.input("revoke_creator", ctx.t("creator"), { required = true }),
			ctx.t("revoke_by_submit"), { button = "danger" }) .. "</section>";
	return w.page(event, ctx, 200, ctx.t("admin_title"), table.concat(body));
end

function pages.admin(event)
	local session, refusal = admin_session(event);
	if not session then
		return refusal;
	end
	return admin_page(event, session, w.context(event, session));
end

local function list_text(value)
	if type(value) ~= "table" then
		return value ~= nil and tostring(value) or nil;
	end
	local items = {};
	for k, v in pairs(value) do
		local item = type(k) == "number" and v or k;
		items[#items + 1] = type(item) == "table" and tostring(item.jid) or tostring(item);
	end
	table.sort(items);
	return items[1] and table.concat(items, ", ") or nil;
end

function pages.admin_invite(event)
	local session, refusal = admin_session(event);
	if not session then
		return refusal;
	end
	local ctx = w.context(event, session);
	local found = w.invites.inspect(w.field(w.query_of(event), "t"));
	if not found then
		return w.page(event, ctx, 404, ctx.t("not_found_title"), w.html.p(ctx.t("not_found_text")));
	end
	local audit, record = found.audit, type(found.record) == "table" and found.record or {};
	local data = type(record.additional_data) == "table" and record.additional_data or {};
	local uses = {};
	for _, use in ipairs(audit.uses or {}) do
		uses[#uses + 1] = ("%s (%s, %s)"):format(tostring(use.account), tostring(use.how), w.html.date(use.at));
	end
	local facts = {
		{ "token", found.token },
		{ "kind", ctx.t("kind_" .. tostring(audit.kind)) },
		{ "creator", audit.creator },
		{ "state", state_text(ctx, found) },
		{ "created", w.html.date(audit.created_at) },
		{ "expires", w.html.date(audit.expires) },
		{ "uses_left", found.uses_left or ctx.t("unlimited") },
		{ "uses", uses[1] and table.concat(uses, "; ") },
		{ "revocation", audit.revoked_at and (w.html.date(audit.revoked_at) .. " (" .. tostring(audit.revoked_by) .. ")") },
		{ "uri", record.uri },
		{ "landing", found.state == "pending" and (record.landing_page or w.landing_url(found.token)) or nil },
		{ "roles", list_text(data.roles) },
		{ "groups", list_text(data.groups) },
		{ "rooms", list_text(data.rooms) },
		{ "note", data.note },
	};
	local dl = { '<dl class="facts">' };
	for _, fact in ipairs(facts) do
		if fact[2] ~= nil then
			-- state and dates are ours (already safe); everything else is escaped
			local value = (fact[1] == "state" or fact[1] == "kind") and fact[2] or esc(fact[2]);
			dl[#dl + 1] = ("<dt>%s</dt><dd>%s</dd>"):format(ctx.t(fact[1]), value);
		end
	end
	dl[#dl + 1] = "</dl>";
	local body = table.concat(dl);
	if found.state == "pending" then
		body = body .. w.html.form(ctx, w.base_path .. "/admin/revoke", w.html.hidden("token", found.token), ctx.t("revoke"),
			{ button = "danger" });
	end
	body = body .. ('<p><a href="%s/admin">%s</a></p>'):format(esc(w.base_path), ctx.t("back"));
	return w.page(event, ctx, 200, ctx.t("details"), body);
end

local function split_list(text)
	local list = {};
	for item in (text or ""):gmatch("[^,%s]+") do
		list[#list + 1] = item;
	end
	return list;
end

-- The note reaches the invite through invite-created (the verbs know no notes).
local pending_note;
module:hook("invite-created", function (invite)
	if pending_note and type(invite.additional_data) == "table" then
		invite.additional_data.note = pending_note;
	end
end, 10);

local function create(session, form)
	local kind = w.field(form, "kind");
	local username = w.field(form, "username") or "";
	local opts = {
		role = split_list(w.field(form, "roles"));
		group = split_list(w.field(form, "groups"));
		room = split_list(w.field(form, "rooms"))[1] and split_list(w.field(form, "rooms")) or nil;
		uses = (w.field(form, "uses") or "") ~= "" and w.field(form, "uses") or nil;
		expires_after = (w.field(form, "expires") or "") ~= "" and w.field(form, "expires") or nil;
	};
	local link;
	local self = { source = session.jid; session = { print = function (text) link = text; end } };
	local target = username ~= "" and (username .. "@" .. module.host) or module.host;
	local ok, result;
	if kind == "reset" then
		if username == "" then
			return nil, "Supply the account whose password is to be reset";
		end
		ok, result = w.admin_verbs.create_reset(self, w.invites, opts, target);
		return ok and link, result;
	elseif kind == "group" then
		if not opts.group[1] then
			return nil, "Name at least one group";
		end
		ok, result = w.admin_verbs.create_account(self, w.invites, opts, target);
	elseif kind == "account" then
		opts.group = nil;
		ok, result = w.admin_verbs.create_account(self, w.invites, opts, target);
	else
		return nil, "Unknown kind of invite";
	end
	return ok and result, result;
end

function pages.admin_create(event)
	local session, form = checked_post(event, true);
	if not session then
		return form;
	end
	local ctx = w.context(event, session);
	local note = w.field(form, "note");
	pending_note = note ~= "" and note or nil;
	local ok, link, why = pcall(create, session, form);
	pending_note = nil;
	if not ok then
		module:log("error", "Creating an invite on the web failed: %s", tostring(link));
		link, why = nil, codes.internal_server_error;
	end
	if not link then
		return admin_page(event, session, ctx, w.html.error(ctx.t("err_create", { why = why })));
	end
	module:log("info", "%s created an invite on the web", session.jid);
	return admin_page(event, session, ctx, created_card(ctx, link, ctx.t("created_invite")));
end

function pages.admin_revoke(event)
	local session, form = checked_post(event, true);
	if not session then
		return form;
	end
	local found = w.invites.inspect(w.field(form, "token"));
	if found and found.state == "pending" then
		w.invites.delete_account_invite(found.token, session.jid);
		module:log("info", "%s revoked invite %s on the web", session.jid, w.core.redact(found.token));
	end
	return w.redirect(event, "/admin");
end

function pages.admin_revoke_by(event)
	local session, form = checked_post(event, true);
	if not session then
		return form;
	end
	local creator = w.field(form, "revoke_creator") or "";
	local revoked = 0;
	for _, item in ipairs(creator ~= "" and w.invites.list_pending(nil, creator) or {}) do
		if w.invites.delete_account_invite(item.token, session.jid) then
			revoked = revoked + 1;
		end
	end
	module:log("info", "%s revoked the %d pending invites of %s on the web", session.jid, revoked, creator);
	local ctx = w.context(event, session);
	return admin_page(event, session, ctx, w.html.p(ctx.t("revoked_n", { n = revoked }), "ok"));
end

return pages;
