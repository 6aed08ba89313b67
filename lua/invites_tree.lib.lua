-- Who invited whom (README "Telling people"): the accounts that came from an account's invites,
-- recursively, derived from the audit records only (mod_invites' all_invites(); nothing is
-- written for it), and the optional cap on a tree's size, invites_max_tree_size. The tree itself
-- is the core's (core.tree). Loaded by mod_invites and invites_admin (module:require).
local jid_split = require "util.jid".split;
-- Required when used (the busted specs run without it).
local usermanager = setmetatable({}, { __index = function (_, k) return require "core.usermanager"[k]; end });

local core = module:require "invites_native";

local tree = {};

-- Every use of every invite `mod` (mod_invites' environment) knows of:
-- { { token, creator, account, at, how }, ... }, or nil and an error.
function tree.uses(mod)
	local all, err = mod.all_invites();
	if not all then
		return nil, err;
	end
	local uses = {};
	for _, item in ipairs(all) do
		for _, use in ipairs(item.audit.uses) do
			uses[#uses + 1] = { token = item.token; creator = item.audit.creator; account = use.account; at = use.at; how = use.how };
		end
	end
	return uses;
end

-- The tree below `account`: { lines, members, size }, or nil and an error.
function tree.of(mod, account)
	local uses, err = tree.uses(mod);
	if not uses then
		return nil, err;
	end
	return core.tree.build(uses, account);
end

-- The pending invites made by `account` or anyone in its tree, or nil and an error.
function tree.pending(mod, account)
	local found, err = tree.of(mod, account);
	if not found then
		return nil, err;
	end
	local members = {};
	for _, member in ipairs(found.members) do
		members[member] = true;
	end
	local pending, list_err = mod.list_pending();
	if not pending then
		return nil, list_err;
	end
	local list = {};
	for _, item in ipairs(pending) do
		if members[item.audit.creator] then
			list[#list + 1] = item;
		end
	end
	return list, found;
end

local function is_admin(jid)
	local node, host = jid_split(jid);
	if not node or host ~= module.host then
		return false;
	end
	if usermanager.get_jid_role then -- Prosody 13 (is_admin is deprecated there)
		local role = usermanager.get_jid_role(jid, host);
		return role ~= nil and (role.name == "prosody:admin" or role.name == "prosody:operator");
	end
	return usermanager.is_admin(jid, host) == true;
end

-- invites_max_tree_size: true when `creator` may make another invite, else nil, "quota-exceeded"
-- and the one-line reason. Read only when the option is set and an account (not an admin) asks.
function tree.may_create(creator)
	local max = module:get_option_number("invites_max_tree_size");
	if not max or max < 1 or type(creator) ~= "string" or not core.tree.is_account(creator) or is_admin(creator) then
		return true;
	end
	local uses, err = tree.uses(_ENV);
	if not uses then
		return nil, err;
	end
	return core.tree.cap_check(uses, creator, math.floor(max));
end

return tree;
