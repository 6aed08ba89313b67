-- mod_invites_web: the English catalogue (the reference: every key is here; other languages may
-- leave keys out, which then fall back to these). {name} is replaced by an escaped value.
return {
	lang_name = "English";
	site_footer = "Invites on {site}";
	skip = "Skip to content";

	-- the landing page, per kind of invite
	invite_title = "Invitation to {site}";
	invite_account = "You have been invited to create an account on {site}.";
	invite_account_named = "You have been invited to create the account {jid} on {site}.";
	invite_account_contact = "{inviter} invites you to chat on {site}. Create an account and you become each other's contacts.";
	invite_contact = "{inviter} invites you to chat. Open this invite in your chat app to add them as a contact.";
	invite_contact_ibr = "No chat app or address yet? You can also create an account on {site} with this invite.";
	invite_reset = "This link resets the password of {jid}.";
	invite_rooms = "You will also join these group chats:";
	open_button = "Open in your chat app";
	open_help = "If nothing happens, install one of the apps below first, then come back and press the button again.";
	web_signup = "Create your account on the web instead";
	web_reset = "Choose a new password";
	qr_heading = "Continue on your phone";
	qr_help = "Scan this code with your phone's camera to open this invite there.";
	qr_title = "QR code of the invite link";
	apps_heading = "Get a chat app";
	apps_for_you = "Apps for {platform}";
	apps_other = "Apps for other platforms";
	store_referrer = "(passes this invite on to the app)";
	platform_android = "Android";
	platform_ios = "iPhone and iPad";
	platform_macos = "macOS";
	platform_windows = "Windows";
	platform_linux = "Linux";
	platform_web = "Web browsers";

	-- no longer valid (the same page for used, expired, revoked and unknown)
	invalid_title = "Invite no longer valid";
	invalid_text = "This invite is no longer valid. Ask the person who sent it for a new one.";

	-- sign-up and reset forms
	signup_title = "Create your account";
	signup_intro = "Choose a username and a password for your new address on {site}.";
	username = "Username";
	username_fixed = "Your username";
	username_help = "Your address will be username@{host}.";
	password = "Password";
	password_again = "Password again";
	password_help = "At least {length} characters.";
	signup_submit = "Create account";
	reset_title = "Choose a new password";
	reset_intro = "Choose a new password for {jid}.";
	reset_submit = "Change password";
	err_fill_all = "Please fill in all fields.";
	err_password_mismatch = "The two passwords differ.";
	err_username_invalid = "This username contains characters that are not allowed.";
	err_username_taken = "This username is already in use.";
	err_refused = "Registration is not allowed.";
	err_failed = "Something went wrong ({id}). Please try again later.";
	signup_done_title = "Welcome!";
	signup_done = "Your account {jid} is ready. Log in to it with one of these apps, using that address and the password you chose.";
	reset_done_title = "Password changed";
	reset_done = "The password of {jid} has been changed. Log in with the new one.";

	-- security refusals
	csrf_title = "Form refused";
	csrf_text = "This form has expired or was sent from another site. Go back, reload the page and try again.";
	forbidden_title = "Not allowed";
	forbidden_text = "Your account may not do this.";
	not_found_title = "Page not found";
	not_found_text = "There is nothing here.";

	-- my invites
	me_title = "My invites";
	login_title = "Log in";
	login_intro = "Log in with your chat address and password to create and manage your invites.";
	address = "Chat address";
	login_submit = "Log in";
	logout = "Log out";
	login_failed = "Wrong address or password.";
	login_throttled = "Too many failed attempts. Try again in a few minutes.";
	logged_in_as = "Logged in as {jid}";
	create_contact = "Create an invite";
	create_contact_help = "A link you can send to someone so they become your contact.";
	create_contact_ibr = "People without an account can create one on {site} with it.";
	new_invite = "Your new invite";
	share_help = "Send this link to the person you invite, or let them scan the code.";
	invite_link = "Invite link";
	my_list = "Invites you created";
	none = "None yet.";
	state = "State";
	state_pending = "pending";
	state_used = "used";
	state_expired = "expired";
	state_revoked = "revoked";
	used_by = "used by {who}";
	expires = "Expires";
	created = "Created";
	kind = "Kind";
	kind_account = "account";
	kind_contact = "contact";
	["kind_account-and-contact"] = "account and contact";
	kind_reset = "password reset";
	kind_group = "group";
	revoke = "Revoke";
	revoked_n = "Revoked {n} invites.";
	admin_link = "Manage all invites";
	me_link = "My invites";

	-- admin
	admin_title = "All invites";
	filter = "Filter";
	filter_any = "any";
	creator = "Creator";
	token = "Token";
	details = "Details";
	uses_left = "Uses left";
	unlimited = "unlimited";
	uses = "Uses";
	revocation = "Revoked";
	roles = "Roles";
	groups = "Groups";
	rooms = "Group chats";
	note = "Note";
	landing = "Landing page";
	uri = "URI";
	revoke_by = "Revoke everything an account created";
	revoke_by_submit = "Revoke all";
	create_heading = "Create an invite";
	create_kind = "Kind of invite";
	create_account_opt = "Account";
	create_group_opt = "Account in groups";
	create_reset_opt = "Password reset";
	create_username = "Username (optional; for a reset: the account)";
	create_roles = "Roles (comma-separated)";
	create_uses = "Accounts it may create";
	create_expires = "Expires after (e.g. 1 week)";
	create_rooms = "Group chats (addresses, comma-separated)";
	create_groups = "Groups (ids, comma-separated)";
	create_note = "Note";
	create_submit = "Create";
	created_invite = "Invite created";
	err_create = "Could not create the invite: {why}";
	back = "Back";
	total = "Matching invites: {n}";
}
