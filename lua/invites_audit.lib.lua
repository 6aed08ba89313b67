-- The invite lifecycle of mod_invites: one audit record per invite (in the invite's own record in
-- the per-invite layout, in store `invites_audit` in the stock one: invites_storage.lib.lua), the
-- invite-used/invite-revoked events, the counters, and the admin views built on them
-- (all_invites, list_pending, inspect, …).
-- Loaded by mod_invites (module:require), in its environment; mod_invites exports its views.
local core = module:require "invites_native";
local codes = core.codes;
local now = os.time;

local audit_log = {};
-- mod_invites' storage layout and its per-host core object (whose classify() says what an invite
-- is, who made it and how many uses it allows); both are made again when prosodyctl switches host.
local layout, invites;

function audit_log.init(storage_layout, host_core)
	layout, invites = storage_layout, host_core;
end

local metrics = {};
if prosody.process_type == "prosody" then
	metrics.created = module:metric("counter", "created", "", "Invites created", { "kind" });
	metrics.used = module:metric("counter", "used", "", "Invite uses", { "how" });
	metrics.revoked = module:metric("counter", "revoked", "", "Invites revoked", {});
	metrics.expired = module:metric("counter", "expired", "", "Expired invites purged", {});
end

function audit_log.count(metric, label, n)
	local counter = metrics[metric];
	if counter then
		(label and counter:with_labels(label) or counter:with_labels()):add(n or 1);
	end
end

-- The audit record of a token: record, false when there is none, or nil and an error.
function audit_log.read(token)
	return layout:audit(token);
end

-- The audit record of a new invite (or one made up for a record stored without one); `facts`:
-- the invite's classification when create() gave it, else asked for.
local function new_audit(invite, creator, facts)
	local kind, made_by, max_uses;
	if facts then
		kind, made_by, max_uses = facts.kind, facts.creator, facts.max_uses;
	else
		kind, made_by, max_uses = invites:classify(invite);
	end
	return {
		kind = kind;
		creator = creator or made_by;
		jid = invite.jid;
		created_at = invite.created_at;
		expires = invite.expires;
		reusable = invite.reusable or nil;
		max_uses = max_uses;
		uses = {};
	};
end

audit_log.new_audit = new_audit;

-- The audit record of an invite (one made up when it has none) with `account`'s use added (how:
-- "registered", "password-reset", "contact-approved").
function audit_log.with_use(audit, invite, account, how)
	audit = audit or new_audit(invite);
	table.insert(audit.uses, { account = account; at = now(); how = how });
	return audit;
end

-- After a use was stored: counts it and tells other modules (invite-used), with the creator the
-- audit record names.
function audit_log.used(invite, account, how, audit)
	audit_log.count("used", how);
	module:fire_event("invite-used", { invite = invite; username = account; how = how;
		creator = type(audit) == "table" and audit.creator or nil });
end

-- The change a revocation makes to an audit record.
function audit_log.revocation(by)
	return function (audit)
		audit.revoked_at, audit.revoked_by = now(), by;
		return audit;
	end;
end

-- After a revocation was stored: counts it and tells other modules (invite-revoked).
function audit_log.revoked(token, record, by)
	audit_log.count("revoked");
	module:fire_event("invite-revoked", { token = token; invite = record; by = by });
end

-- Audit records are kept for invites_audit_retention after their invite ended.
local function audit_retention()
	local seconds = core.option_period(module:get_option("invites_audit_retention", "90 days"));
	return seconds or 90 * 86400;
end

-- The lifecycle of one invite from its audit record: { state, uses_left, purge_audit }.
-- An audit record the core cannot read (a field missing or mistyped) is "unknown" and kept.
local function lifecycle(token, audit, host_map)
	local last = audit.uses[#audit.uses];
	local life, _, why = core.lifecycle({
		stored = layout:stored(token, audit, host_map);
		expires = audit.expires;
		uses = #audit.uses;
		max_uses = audit.max_uses;
		reusable = audit.reusable;
		revoked_at = audit.revoked_at;
		last_use = last and last.at;
	}, now(), audit_retention());
	if not life then
		module:log("warn", "Unreadable audit record of invite %s: %s", core.redact(token), why);
		return { state = "unknown" };
	end
	return life;
end

-- Where an invite is in its life, from its audit record (false: none) and its host-level record:
-- the core's lifecycle answer (state "pending", "used", "expired", "revoked", and what revoking
-- it does), or state "unknown" when there is no trace of it.
function audit_log.life(token, audit, record)
	audit = audit or (record and new_audit(record));
	if not audit then
		return { state = "unknown" };
	end
	return lifecycle(token, audit);
end

-- Every audit record: { [token] = record }, or nil and an error.
-- Every audit record, and the host-level map when the layout read it whole on the way.
local function read_audits()
	local all, host_map_or_err = layout:audits();
	if not all then
		return nil, host_map_or_err;
	end
	local audits = {};
	for token, audit in pairs(all) do
		if type(audit) == "table" and type(audit.uses) == "table" then
			audits[token] = audit;
		end
	end
	return audits, host_map_or_err;
end

-- Removes the audit records kept long enough among `audits` ({ [token] = audit }; `host_map`: the
-- host-level records of the same slice); how many.
function audit_log.purge(audits, host_map)
	local removed = 0;
	for token, audit in pairs(audits) do
		if type(audit) == "table" and type(audit.uses) == "table" and lifecycle(token, audit, host_map).purge_audit then
			local ok, err = layout:delete_audit(token);
			if not ok then
				module:log("error", "Failed to purge an audit record: %s", err);
				return removed;
			end
			removed = removed + 1;
		end
	end
	if removed > 0 then
		module:log("info", "Purged %d audit records", removed);
	end
	return removed;
end

-- Every invite with its audit record, for the admin views: { token, audit, state, uses_left }.
-- Invites created before audit records existed (or by the stock modules) get one made up from
-- what invite_token holds.
function audit_log.all_invites()
	local audits, host_map = read_audits();
	if not audits then
		return nil, host_map;
	end
	for username in layout:users() do
		for token, expires in pairs(layout:user_map(username) or {}) do
			if not audits[token] and type(expires) == "number" then
				audits[token] = { kind = "contact"; creator = username .. "@" .. module.host; jid = username .. "@" .. module.host;
					expires = expires; uses = {} };
			end
		end
	end
	local list = {};
	for token, audit in pairs(audits) do
		if type(audit) == "table" and type(audit.uses) == "table" then
			local life = lifecycle(token, audit, host_map);
			list[#list + 1] = { token = token; audit = audit; state = life.state; uses_left = life.uses_left };
		end
	end
	table.sort(list, function (a, b)
		return (a.audit.expires or 0) < (b.audit.expires or 0);
	end);
	return list;
end

-- Pending invites, optionally of one kind and one creator, soonest expiry first.
function audit_log.list_pending(kind, creator)
	local all, err = audit_log.all_invites();
	if not all then
		return nil, err;
	end
	local list = {};
	for _, item in ipairs(all) do
		if item.state == "pending" and (kind == nil or item.audit.kind == kind) and (creator == nil or item.audit.creator == creator) then
			list[#list + 1] = item;
		end
	end
	return list;
end

-- What one creator made: the creation times of their invites (pending or not, while audit
-- records are kept) and how many are pending. For quotas and "My invites".
function audit_log.created_by(creator)
	local all, err = audit_log.all_invites();
	if not all then
		return nil, err;
	end
	local times, mine = {}, {};
	for _, item in ipairs(all) do
		if item.audit.creator == creator then
			times[#times + 1] = item.audit.created_at;
			if item.state == "pending" then
				mine[#mine + 1] = item;
			end
		end
	end
	return times, mine;
end

-- One invite with its audit record and state, or nil and an error code.
function audit_log.inspect(token)
	if not core.check_token(token) then
		return nil, codes.token_invalid;
	end
	local audit, err = audit_log.read(token);
	if audit == nil then
		return nil, err;
	end
	local record = layout:record(token);
	if not audit then
		if not record then
			return nil, codes.token_invalid;
		end
		audit = new_audit(record);
	end
	local life = lifecycle(token, audit);
	return { token = token; audit = audit; state = life.state; uses_left = life.uses_left; record = record };
end

-- Notes in the audit record of `account`'s use of an invite what became of each group chat.
function audit_log.note_rooms(invite, account, results)
	local audit = audit_log.read(invite.token);
	if not audit then
		return;
	end
	for i = #audit.uses, 1, -1 do
		local use = audit.uses[i];
		if use.account == account and use.rooms == nil then
			use.rooms = {};
			for _, result in ipairs(results) do
				use.rooms[result.jid] = result.outcome;
			end
			local ok, err = layout:set_audit(invite.token, audit);
			if not ok then
				module:log("warn", "Failed to note the group chats of a use in its audit record: %s", err);
			end
			return;
		end
	end
end

return audit_log;
