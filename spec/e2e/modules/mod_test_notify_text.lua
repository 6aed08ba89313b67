-- Test-only: replaces the inviter's notification text (invite-notify-inviter) for accounts named
-- custom*, and sends none for accounts named silent*.
module:hook("invite-notify-inviter", function (event)
	if event.account:match("^custom") then
		event.text = ("Custom: %s (%s)"):format(event.account, event.how);
	elseif event.account:match("^silent") then
		return true;
	end
end);
