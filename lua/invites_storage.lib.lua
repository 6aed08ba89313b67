-- Where mod_invites keeps invites: the storage layouts (invites_storage_layout).
--
--   "records" (default): one record per invite, so every operation costs the same at any number
--     of invites. Store `invites`, user = the token, its one key "invite" (a keyval record
--     { invite = ENTRY }, which is also what a map store reads at (token, "invite")): the audit
--     record of the invite, holding the stock host-level record in its field `record` while the
--     invite is pending. Contact invites keep stock's user-level entry in `invite_token` (inviter, token) →
--     expiry; account and reset invites restricted to one account are indexed by that name in
--     keyval store `invites_by_name` (name → { [token] = expires }).
--   "stock": the stock modules' own layout: `invite_token` at host level (nil, token) → record and
--     at user level as above, our audit records in keyval store `invites_audit`.
--
-- Both answer the same calls (layout:record(token), layout:create(...), ...); mod_invites and
-- invites_audit.lib.lua never see which one is in use. Invites found in the other layout are
-- moved over (layout:adopt_all() at start, layout:adopt(token) on a miss), so an older prosodyctl
-- writing the stock layout behind the server's back, or a backup restored, keeps working.
-- Loaded by mod_invites (module:require), in its environment.
local storage = {};

local HOST_RECORD = "invite"; -- the key of an invite's entry in store `invites`

local codes = module:require "invites_native".codes;

local function failed(what, err)
	module:log("warn", "Failed to %s: %s", what, tostring(err));
	return nil, codes.internal_server_error;
end

-- What both layouts share: stock's user-level entries of contact invites.
local shared = {};

-- Whether the inviter's user-level entry of a contact-only invite (audit: its audit record) is
-- still stored.
function shared:in_owner_entry(token, audit)
	local owner = self.invites:entry_owner(audit);
	return owner ~= nil and self.token:get(owner, token) ~= nil;
end

function shared:user_entry(user, token)
	local expires, err = self.token:get(user, token);
	if expires == nil and err then
		return failed("read invite", err);
	end
	return expires;
end

-- The user-level map of one user ({ [token] = expires }), or nil and an error.
function shared:user_map(user)
	local map, err = self.token_view:get(user);
	if map == nil and err then
		return failed("read the invites of " .. user, err);
	end
	return map or {};
end

-- The users with user-level entries (an iterator; nothing when storage cannot list them).
function shared:users()
	local users, state, init = self.token_view:users();
	if not users then
		module:log("error", "Failed to list users with invites: %s", tostring(state));
		return function () end;
	end
	return function ()
		local user;
		repeat
			user = users(state, init);
			init = user;
		until user ~= "" -- COMPAT: mod_storage_sql lists host-level rows as user ""
		return user;
	end;
end

-- Removes `tokens` from `user`'s record of a map store, in one write.
local function remove_tokens(map_store, user, tokens)
	if #tokens == 0 then
		return true;
	end
	local keys = {};
	for _, token in ipairs(tokens) do
		keys[token] = map_store.remove;
	end
	return map_store:set_keys(user, keys);
end

function shared:remove_user_tokens(user, tokens)
	return remove_tokens(self.token, user, tokens);
end

function shared:remove_user(user)
	return self.token_view:set(user, nil);
end

-- Every key of a store opened as keyval (tokens, names), collected: nil and an error when it
-- cannot be listed.
local function list_keys(view)
	local keys = {};
	local iterate, state, init = view:users();
	if not iterate then
		if state then
			return nil, state;
		end
		return keys;
	end
	for key in iterate, state, init do
		if key ~= "" then
			keys[#keys + 1] = key;
		end
	end
	return keys;
end

--- The stock layout

local stock = setmetatable({ name = "stock" }, { __index = shared });
local stock_mt = { __index = stock };

function stock:record(token)
	local record, err = self.token:get(nil, token);
	if record == nil and err then
		return failed("read invite", err);
	end
	return record;
end

function stock:audit(token)
	local audit, err = self.audit_store:get(token);
	if audit == nil and err then
		return failed("read the audit record of an invite", err);
	end
	return audit or false;
end

function stock:set_audit(token, audit)
	return self.audit_store:set(token, audit);
end

-- What is stored of a token now: { record = host-level record?, audit = audit record or false },
-- or nil and an error (see mod_invites' standing).
function stock:standing(token)
	local record, err = self:record(token);
	if err then
		return nil, err;
	end
	local audit, audit_err = self:audit(token);
	if audit == nil then
		return nil, audit_err;
	end
	return { record = record; audit = audit };
end

-- Stores a new invite: its host-level record (when `host_level`), the inviter's entry (when
-- `contact_owner`), then its audit record; nothing of it when a write fails.
function stock:create(invite, audit, host_level, contact_owner)
	if host_level then
		local ok, err = self.token:set(nil, invite.token, invite);
		if not ok then
			return nil, err;
		end
	end
	local function undo()
		if host_level then
			self:remove_keys({ { token = invite.token } });
		end
	end
	if contact_owner then
		local ok, err = self.token:set(contact_owner, invite.token, invite.expires);
		if not ok then
			undo();
			return nil, err;
		end
	end
	local ok, err = self.audit_store:set(invite.token, audit);
	if not ok then
		if contact_owner then
			self.token:set(contact_owner, invite.token, nil);
		end
		undo();
		return nil, err;
	end
	return true;
end

-- Deletes keys ({ user?, token }) in order, stopping at the first failure: plans put the key that
-- makes an invite invalid first, so a failure half-way leaves a dead invite, never a usable half.
-- `on_removed(token)` hears of each host-level record removed.
function stock:remove_keys(keys, on_removed)
	for _, key in ipairs(keys) do
		local ok, err = self.token:set(key.user, key.token, nil);
		if not ok then
			return nil, err;
		elseif key.user == nil and on_removed then
			on_removed(key.token);
		end
	end
	return true;
end

-- Removes `keys` and then changes the audit record of `token` with `change(audit)` (which
-- answers the audit to write, or nil for no change): true, or nil and the error of the removal.
-- A failed audit write is logged: the invite is gone either way. `standing`: what standing()
-- read of the token a moment ago, so it is not read again.
function stock:settle(token, keys, change, on_removed, standing)
	local ok, err = self:remove_keys(keys, on_removed);
	if not ok then
		return nil, err;
	end
	if change then
		local audit;
		if standing then
			audit = standing.audit;
		else
			audit = self:audit(token);
		end
		local changed = audit ~= nil and change(audit or nil);
		if changed then
			local set_ok, set_err = self.audit_store:set(token, changed);
			if not set_ok then
				module:log("error", "Failed to update the audit record of an invite: %s", tostring(set_err));
			end
		end
	end
	return true;
end

-- Every host-level record: { [token] = record }, or nil and an error.
function stock:host_records()
	local records, err = self.token_view:get(nil);
	if records == nil and err then
		return failed("read invites", err);
	end
	return records or {};
end

function stock:remove_host_tokens(tokens, on_removed)
	local ok, err = self:remove_user_tokens(nil, tokens);
	if ok and on_removed then
		for _, token in ipairs(tokens) do
			on_removed(token);
		end
	end
	return ok, err;
end

-- Every audit record: { [token] = audit }, or nil and an error; with `made_up`, one made up for
-- each host-level record stored without one (by the stock modules, or before audit records).
function stock:audits(made_up)
	local tokens, list_err = list_keys(self.audit_store);
	if not tokens then
		return failed("list audit records", list_err);
	end
	local audits = {};
	for _, token in ipairs(tokens) do
		local audit, err = self.audit_store:get(token);
		if audit == nil and err then
			return failed("read an audit record", err);
		end
		audits[token] = audit;
	end
	local host_map = self:host_records();
	for token, record in pairs(made_up ~= false and host_map or {}) do
		if type(record) == "table" and audits[token] == nil then
			audits[token] = self.new_audit(record);
		end
	end
	return audits, host_map;
end

-- The purge's view of every invite: an iterator over slices (host_map, audits), here one slice
-- (the map is one record); nil and an error when they cannot be read. The iterator answers nil
-- and an error when a slice cannot be read.
function stock:slices()
	local host_map, err = self:host_records();
	if not host_map then
		return nil, err;
	end
	local audits, audits_err = self:audits();
	if not audits then
		return nil, audits_err;
	end
	local given = false;
	return function ()
		if given then
			return nil;
		end
		given = true;
		return host_map, audits;
	end;
end

function stock:delete_audit(token)
	return self.audit_store:set(token, nil);
end

-- Whether the invite of an audit record is still stored (pending). `host_map`: the host-level
-- map when the caller read it whole already (a scan), so a scan reads it once, not per invite.
function stock:stored(token, audit, host_map)
	local record;
	if host_map then
		record = host_map[token];
	else
		record = self.token:get(nil, token);
	end
	return record ~= nil or self:in_owner_entry(token, audit);
end

-- The stock layout keeps no index by name: the reservation index is built from the host map.
function stock.named()
	return nil;
end

-- The host-level records that may belong to an account (to remove with it): { [token] = record }.
function stock:records_of()
	return self:host_records();
end

--- The per-invite layout

-- An entry is the one field of its token's keyval record: read and written whole, so a write is
-- one write (a map store's set would read the record first on internal storage), and the same
-- single row on SQL as a map store's (token, "invite").
local function read_entry(self, token)
	local data, err = self.entries_view:get(token);
	if data == nil then
		return nil, err;
	end
	return data[HOST_RECORD];
end

local function write_entry(self, token, entry)
	return self.entries_view:set(token, entry ~= nil and { [HOST_RECORD] = entry } or nil);
end

local records = setmetatable({ name = "records"; name_index = true }, { __index = shared });
local records_mt = { __index = records };

-- The entry of a token (its audit record, with the host-level record in `record` while pending),
-- false when there is none, or nil and an error. A miss looks for the token in the stock layout.
function records:entry(token)
	local entry, err = read_entry(self, token);
	if entry == nil and err then
		return failed("read invite", err);
	end
	if entry == nil then
		return self:adopt(token);
	end
	return entry;
end

function records:record(token)
	local entry, err = self:entry(token);
	if entry == nil then
		return nil, err;
	end
	return entry and entry.record or nil;
end

function records:audit(token)
	return self:entry(token);
end

-- As stock:standing, in one read: the entry is the audit record.
function records:standing(token)
	local entry, err = self:entry(token);
	if entry == nil then
		return nil, err;
	end
	return { record = entry and entry.record or nil; audit = entry };
end

function records:set_audit(token, audit)
	return write_entry(self, token, audit);
end

-- One write for the invite itself (the entry), after the inviter's entry and the name index: the
-- entry is what makes the invite usable, so a failure before it leaves nothing usable.
function records:create(invite, audit, host_level, contact_owner, name_key)
	if contact_owner then
		local ok, err = self.token:set(contact_owner, invite.token, invite.expires);
		if not ok then
			return nil, err;
		end
	end
	if name_key and host_level then
		local ok, err = self.by_name:set_keys(name_key, { [invite.token] = invite.expires });
		if not ok then
			if contact_owner then
				self.token:set(contact_owner, invite.token, nil);
			end
			return nil, err;
		end
	end
	audit.record = host_level and invite or nil;
	local ok, err = write_entry(self, invite.token, audit);
	if not ok then
		if contact_owner then
			self.token:set(contact_owner, invite.token, nil);
		end
		return nil, err;
	end
	return true;
end

-- As stock:settle, in one write of the entry: user-level keys first (see stock:remove_keys), then
-- the entry without its host-level record (when a key names it) and with its audit changed.
function records:settle(token, keys, change, on_removed, standing)
	local drop_record = false;
	for _, key in ipairs(keys) do
		if key.user == nil then
			drop_record = true;
		else
			local ok, err = self.token:set(key.user, key.token, nil);
			if not ok then
				return nil, err;
			end
		end
	end
	local entry, err;
	if standing then
		entry = standing.audit;
	else
		entry, err = self:entry(token);
		if entry == nil then
			return nil, err;
		end
	end
	local changed = change and change(entry or nil);
	local record = entry and entry.record;
	if changed then
		entry = changed;
	elseif not (drop_record and record) then
		return true; -- nothing stored to change
	end
	if drop_record then
		entry.record = nil;
	end
	local ok, set_err = write_entry(self, token, entry);
	if not ok then
		return nil, set_err;
	end
	if drop_record and record then
		-- The name index keeps pending invites only; a stale entry would cost its name a read.
		local name_key = self.invites:name_key(token, record);
		if name_key then
			local unnamed, unname_err = self:unname(name_key, { token });
			if not unnamed then
				module:log("warn", "Failed to update the name index of invites: %s", tostring(unname_err));
			end
		end
		if on_removed then
			on_removed(token);
		end
	end
	return true;
end

-- Every entry: { [token] = entry }, or nil and an error (a scan: for purges, lists and moves).
function records:all_entries()
	local tokens, list_err = list_keys(self.entries_view);
	if not tokens then
		return failed("list invites", list_err);
	end
	local all = {};
	for _, token in ipairs(tokens) do
		local entry, err = read_entry(self, token);
		if entry == nil and err then
			return failed("read invite", err);
		end
		if type(entry) == "table" then
			all[token] = entry;
		end
	end
	return all;
end

function records:host_records()
	local all, err = self:all_entries();
	if not all then
		return nil, err;
	end
	local host_map = {};
	for token, entry in pairs(all) do
		host_map[token] = entry.record;
	end
	return host_map;
end

function records:remove_host_tokens(tokens, on_removed)
	for _, token in ipairs(tokens) do
		local ok, err = self:settle(token, { { token = token } }, nil, on_removed);
		if not ok then
			return nil, err;
		end
	end
	return true;
end

function records:audits()
	return self:all_entries();
end

-- Slices of up to `n` entries: (host-level records, entries), both by token.
function records:slices(n)
	local iterate, state, control = self.entries_view:users();
	if not iterate then
		if state then
			return failed("list invites", state);
		end
		iterate = function () end;
	end
	local finished = false;
	return function ()
		if finished then
			return nil;
		end
		local host_map, entries, count = {}, {}, 0;
		while count < n do
			local token = iterate(state, control);
			control = token;
			if token == nil then
				finished = true;
				break;
			elseif token ~= "" then
				local entry, err = read_entry(self, token);
				if entry == nil and err then
					finished = true;
					return nil, err;
				end
				if type(entry) == "table" then
					host_map[token], entries[token], count = entry.record, entry, count + 1;
				end
			end
		end
		if count == 0 then
			return nil;
		end
		return host_map, entries;
	end;
end

function records:delete_audit(token)
	return write_entry(self, token, nil);
end

function records:stored(token, entry)
	return entry.record ~= nil or self:in_owner_entry(token, entry);
end

-- The tokens indexed under a username (see Record::name_key), or nil and an error.
function records:named(username)
	local map, err = self.by_name_view:get(username);
	if map == nil and err then
		return failed("read the invites of " .. username, err);
	end
	local tokens = {};
	for token in pairs(map or {}) do
		tokens[#tokens + 1] = token;
	end
	table.sort(tokens);
	return tokens;
end

-- The host-level records that may belong to an account: those indexed under its name and those
-- of its contact invites. { [token] = record }, or nil and an error.
function records:records_of(username)
	local tokens, err = self:named(username);
	if not tokens then
		return nil, err;
	end
	local contact, map_err = self:user_map(username);
	if not contact then
		return nil, map_err;
	end
	for token in pairs(contact) do
		tokens[#tokens + 1] = token;
	end
	local host_map = {};
	for _, token in ipairs(tokens) do
		local record, read_err = self:record(token);
		if read_err then
			return nil, read_err;
		end
		host_map[token] = record;
	end
	return host_map;
end

function records:unname(username, tokens)
	return remove_tokens(self.by_name, username, tokens);
end

--- Moving invites between the layouts: the core plans each batch (invites:migrate_in and
--- migrate_out answer what happens to every invite and how it counts); this reads, writes,
--- removes and reports progress.

-- The tokens of a move in batches as large as the core says: an iterator of (batch, how many
-- are done after it).
local function batches(self, tokens)
	local size, done = self.invites:migrate_batch(#tokens), 0;
	return function ()
		if done >= #tokens then
			return nil;
		end
		local batch = {};
		for i = done + 1, math.min(done + size, #tokens) do
			batch[#batch + 1] = tokens[i];
		end
		done = done + #batch;
		return batch, done;
	end;
end

-- The entries of `tokens`: { [token] = entry }, or nil and an error.
local function read_entries(self, tokens)
	local entries = {};
	for _, token in ipairs(tokens) do
		local entry, err = read_entry(self, token);
		if entry == nil and err then
			return nil, err;
		end
		entries[token] = entry;
	end
	return entries;
end

-- Writes the entry of an invite moved from the stock layout as `step` of migrate_in says (its
-- audit record or one made up from its host-level record, holding that record or not), with its
-- name index: the entry, or nil and an error.
local function move_in(self, token, step, record, audit)
	local entry = step.entry == "stored" and audit or self.new_audit(record);
	entry.record = step.record and record or nil;
	if step.name_key then
		local ok, err = self.by_name:set_keys(step.name_key, { [token] = record.expires });
		if not ok then
			return nil, err;
		end
	end
	local ok, err = write_entry(self, token, entry);
	return ok and entry or nil, err;
end

-- The stock layout's host-level record and audit of one token, moved into an entry (on a miss:
-- nothing counts as expired): the entry, false when the stock layout has neither, or nil and an
-- error.
function records:adopt(token)
	local record, err = stock.record(self, token);
	if err then
		return nil, err;
	end
	local audit, audit_err = stock.audit(self, token);
	if audit == nil then
		return nil, audit_err;
	elseif record == nil and not audit then
		return false; -- nothing stored: an unknown token
	end
	local step = self.invites:migrate_in({ token }, {}, { [token] = record }, { [token] = audit or nil })[1];
	if not step.entry then
		return false;
	end
	local entry, set_err = move_in(self, token, step, record, audit);
	local ok = entry ~= nil;
	if ok then
		ok, set_err = self.token:set(nil, token, nil);
	end
	if ok and step.drop_audit then
		ok, set_err = self.audit_store:set(token, nil);
	end
	if not ok then
		return failed("move an invite to the per-invite layout", set_err);
	end
	return entry;
end

local function new_counts()
	return { moved = 0; expired = 0; ended = 0; already = 0 };
end

-- Every invite of the stock layout moved into this one (`progress(done, total)` hears how far it
-- got): { moved = pending invites moved, expired = invites left behind as expired (an hour past
-- their expiry, as a purge would remove them; their audit records move), ended = audit records of
-- used or revoked invites moved, already = invites that were in this layout already }, or nil and
-- an error. Safe to interrupt and run again: each batch is written to this layout before it
-- leaves the other, and where both hold an invite, the per-invite entry wins (it alone knows
-- whether the invite was used or revoked since), so no invite is lost, duplicated or revived.
function records:migrate_here(progress)
	local host_map, err = stock.host_records(self);
	if not host_map then
		return nil, err;
	end
	local audits, audits_err = stock.audits(self, false);
	if not audits then
		return nil, audits_err;
	end
	local tokens = {};
	for token in pairs(host_map) do
		tokens[#tokens + 1] = token;
	end
	for token in pairs(audits) do
		if host_map[token] == nil then
			tokens[#tokens + 1] = token;
		end
	end
	local counts, now = new_counts(), os.time();
	for batch, done in batches(self, tokens) do
		local entries, read_err = read_entries(self, batch);
		if not entries then
			return failed("read invite", read_err);
		end
		local steps = self.invites:migrate_in(batch, entries, host_map, audits, now);
		for _, step in ipairs(steps) do
			if step.entry then
				local ok, set_err = move_in(self, step.token, step, host_map[step.token], audits[step.token]);
				if not ok then
					return failed("move an invite to the per-invite layout", set_err);
				end
			end
			counts[step.count] = counts[step.count] + 1;
		end
		-- Only then does the stock layout forget them.
		local ok, remove_err = self:remove_user_tokens(nil, batch);
		for _, step in ipairs(steps) do
			if not ok then
				break;
			end
			if step.drop_audit then
				ok, remove_err = self.audit_store:set(step.token, nil);
			end
		end
		if not ok then
			return failed("remove moved invites from the stock layout", remove_err);
		end
		if progress then
			progress(done, #tokens);
		end
	end
	return counts;
end

-- The reverse: every entry written to the stock layout (pending host-level records to
-- `invite_token`, audit records to `invites_audit`), then deleted. Same guarantees.
function records:migrate_to_stock(progress)
	local tokens, list_err = list_keys(self.entries_view);
	if not tokens then
		return failed("list invites", list_err);
	end
	local host_map, host_err = stock.host_records(self);
	if not host_map then
		return nil, host_err;
	end
	local counts, moved = new_counts(), {};
	for batch, done in batches(self, tokens) do
		local entries, read_err = read_entries(self, batch);
		if not entries then
			return failed("read invite", read_err);
		end
		local stock_keys, moving = {}, {};
		for _, step in ipairs(self.invites:migrate_out(batch, entries, os.time())) do
			local token = step.token;
			if step.remove then -- an empty entry, left by a deletion interrupted on internal storage
				local ok, remove_err = self.entries_view:set(token, nil);
				if not ok then
					return failed("remove an empty entry", remove_err);
				end
			else
				-- An ended invite's stock record (left by an interrupted move) goes too.
				stock_keys[token] = step.record and entries[token].record or self.token.remove;
				moving[#moving + 1], moved[token] = step, true;
				counts[step.count] = counts[step.count] + 1;
			end
		end
		-- The stock records first, then the audit records, then the entries: an interruption
		-- leaves the entries to finish the move.
		local ok, err = self.token:set_keys(nil, stock_keys);
		for _, step in ipairs(moving) do
			if not ok then
				break;
			end
			local entry = entries[step.token];
			entry.record = nil;
			ok, err = self.audit_store:set(step.token, entry);
			if ok and step.name_key then
				ok, err = records.unname(self, step.name_key, { step.token });
			end
			if ok then
				ok, err = write_entry(self, step.token, nil);
			end
		end
		if not ok then
			return failed("move invites to the stock layout", err);
		end
		if progress then
			progress(done, #tokens);
		end
	end
	counts.already = self.invites:migrate_already(host_map, moved);
	return counts;
end

-- Moves every invite into `layout` (from the other one).
function storage.migrate(layout, progress)
	if layout.name == "stock" then
		return records.migrate_to_stock(layout, progress);
	end
	return records.migrate_here(layout, progress);
end

storage.HOST_RECORD = HOST_RECORD;

-- The layout object for the current host: `name` "records" or "stock"; `hooks` gives new_audit
-- (an audit record made up for a record) and invites (the host's core object: name keys, the
-- plans of moves).
function storage.open(name, hooks)
	local self = {
		token = module:open_store("invite_token", "map");
		token_view = module:open_store("invite_token");
		audit_store = module:open_store("invites_audit");
		entries_view = module:open_store("invites");
		by_name = module:open_store("invites_by_name", "map");
		by_name_view = module:open_store("invites_by_name");
		new_audit = hooks.new_audit;
		invites = hooks.invites;
	};
	return setmetatable(self, name == "stock" and stock_mt or records_mt);
end

storage.layouts = { records = records; stock = stock };

return storage;
