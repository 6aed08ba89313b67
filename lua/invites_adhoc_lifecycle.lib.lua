-- The lifecycle ad-hoc commands of mod_invites_adhoc (the project's own nodes,
-- urn:x-prosody-invites:commands#...):
--   #list    "List invites"    admins: every pending invite, a page at a time, tick to revoke
--   #revoke  "Revoke invite"   admins: one token
--   #mine    "My invites"      local users: their own pending invites, tick to revoke
-- Loaded by mod_invites_adhoc (module:require), in its environment; it hands over the pieces
-- every command shares (the invites API, the requester checks, the form and error helpers).
local dataforms = require "util.dataforms";
local jid_bare = require "util.jid".bare;
local codes = module:require "invites_native".codes;

return function (shim)
	local invites, adhoc_lib, ns = shim.invites, shim.adhoc_lib, shim.ns;
	local failed, stage, form_step, trimmed = shim.failed, shim.stage, shim.form_step, shim.trimmed;
	local is_manager, requester_of = shim.is_manager, shim.requester_of;

	local PAGE_SIZE = 50;

	local function invite_label(item)
		local audit = item.audit;
		local left = item.uses_left and tostring(item.uses_left) or "unlimited";
		return ("%s · %s · by %s · until %s · %s left"):format(item.token:sub(1, 8) .. "…", audit.kind, tostring(audit.creator),
			os.date("!%Y-%m-%d %H:%M", audit.expires), left);
	end

	local function revoke_selected(data, tokens, allowed)
		local revoked, gone = 0, 0;
		for _, token in ipairs(tokens or {}) do
			if not allowed[token] then -- not (or no longer) among the pending invites listed
				gone = gone + 1;
			else
				local ok, err, state = invites.delete_account_invite(token, jid_bare(data.from));
				if ok then
					revoked = revoked + 1;
				elseif err == codes.not_pending then -- used or expired since the list was shown: nothing to revoke
					gone = gone + 1;
				else
					return failed(err, state);
				end
			end
		end
		module:log("info", "%s revoked %d invites", jid_bare(data.from), revoked);
		local info = ("Revoked %d invites"):format(revoked);
		if gone > 0 then
			info = info .. ("; %d were not pending invites of this list"):format(gone);
		end
		return { status = "completed"; info = info };
	end

	-- A paged list of `items` with a multi-select; completing it revokes what was ticked.
	local function invite_list(data, state, items, title)
		local step = stage(data);
		if step == "cancel" then
			return { status = "canceled" };
		end
		local page = state and state.page or 1;
		local allowed = {};
		for _, item in ipairs(items) do
			allowed[item.token] = true;
		end
		if data.form and data.action ~= "next" and data.action ~= "prev" then
			local selected = dataforms.new({ { name = "invites"; type = "list-multi" } }):data(data.form);
			return revoke_selected(data, selected and selected.invites, allowed);
		end
		if data.action == "next" then
			page = page + 1;
		elseif data.action == "prev" then
			page = math.max(page - 1, 1);
		end
		local pages = math.max(math.ceil(#items / PAGE_SIZE), 1);
		page = math.min(page, pages);
		local options = {};
		for i = (page - 1) * PAGE_SIZE + 1, math.min(page * PAGE_SIZE, #items) do
			options[#options + 1] = { label = invite_label(items[i]); value = items[i].token };
		end
		local form = dataforms.new({
			title = title;
			instructions = ("%d pending invites (page %d of %d). Tick invites and complete to revoke them."):format(#items, page, pages);
			{ name = "invites"; type = "list-multi"; label = "Invites"; options = options };
		});
		local actions = { "complete", default = "complete" };
		if page < pages then
			table.insert(actions, 1, "next");
		end
		if page > 1 then
			table.insert(actions, 1, "prev");
		end
		return { status = "executing"; actions = actions; form = form }, { page = page };
	end

	local function list_invites(_, data, state)
		if not is_manager(data) then
			return failed(codes.forbidden);
		end
		local items, err = invites.list_pending();
		if not items then
			return failed(err);
		end
		return invite_list(data, state, items, "Pending invites");
	end

	local function my_invites(_, data, state)
		local requester = requester_of(data.from, data);
		if not requester["local"] then
			return failed(codes.not_local_user);
		end
		local _, mine = invites.created_by(jid_bare(data.from));
		if not mine then
			return failed(codes.internal_server_error);
		end
		return invite_list(data, state, mine, "My pending invites");
	end

	local revoke_form = dataforms.new({
		title = "Revoke an invite";
		{ name = "token"; type = "text-single"; label = "Invite token"; required = true };
	});

	local function revoke_invite(_, data)
		if not is_manager(data) then
			return failed(codes.forbidden);
		end
		local fields, response = form_step(data, revoke_form, "A token is required");
		if not fields then
			return response;
		end
		local found = invites.inspect(trimmed(fields.token));
		if not found or found.state ~= "pending" then
			return failed(codes.token_invalid);
		end
		return revoke_selected(data, { found.token }, { [found.token] = true });
	end

	module:provides("adhoc", adhoc_lib.new("List invites", ns.list_command, list_invites, "admin"));
	module:provides("adhoc", adhoc_lib.new("Revoke invite", ns.revoke_command, revoke_invite, "admin"));
	module:provides("adhoc", adhoc_lib.new("My invites", ns.mine_command, my_invites, "local_user"));
end;
