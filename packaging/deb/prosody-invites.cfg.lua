-- prosody-invites: example configuration (Debian package prosody-invites).
-- Copy what you need into /etc/prosody/prosody.cfg.lua (or a file it Include()s);
-- the package never edits Prosody's configuration itself.

-- Our directory first, so its modules win over Prosody's own ones of the same names.
-- Keep your other entries after it.
plugin_paths = { "/usr/lib/prosody-invites" }

modules_enabled = {
	-- ... your other modules ...
	"invites";          -- invites, prosodyctl mod_invites generate, the admin shell's invite verbs
	"invites_register"; -- registration with an invite (loads register_ibr), XEP-0379 pre-approval
	"invites_adhoc";    -- ad-hoc commands to create invites (XEP-0401)
}

-- In-band registration with an invite needs Prosody's allow_registration (default false):
allow_registration = true

-- Options and their defaults (all of them: /usr/share/doc/prosody-invites/README.md.gz):
-- registration_invite_only = true -- in-band registration needs an invite
-- invite_expiry = "1 week"        -- lifetime of new invites (seconds or a period)
-- invites_purge_interval = 3600   -- seconds between purges of expired invites
