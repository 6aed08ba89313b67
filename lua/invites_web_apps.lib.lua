-- mod_invites_web: the default list of chat apps shown on the landing page, per platform.
-- Operators replace it with `invites_web_apps` (a list of the same shape in the config) or
-- `invites_web_apps_file` (a JSON file holding such a list).
--
-- Each app: id, name, text, platforms (android, ios, macos, windows, linux, web), links: { label,
-- url, referrer }. A link with `referrer = true` gets `&referrer=<the invite's xmpp: URI>`
-- appended: Google Play hands that to the app on its first start (install referrer), so the app
-- can go on with the invite by itself.
return {
	{
		id = "conversations"; name = "Conversations"; platforms = { "android" };
		text = "An easy to use chat app for Android, with encryption built in.";
		links = {
			{ label = "Google Play"; url = "https://play.google.com/store/apps/details?id=eu.siacs.conversations"; referrer = true };
			{ label = "F-Droid"; url = "https://f-droid.org/packages/eu.siacs.conversations/" };
		};
	};
	{
		id = "monocles"; name = "monocles chat"; platforms = { "android" };
		text = "A chat app for Android based on Conversations.";
		links = {
			{ label = "Google Play"; url = "https://play.google.com/store/apps/details?id=de.monocles.chat"; referrer = true };
			{ label = "F-Droid"; url = "https://f-droid.org/packages/de.monocles.chat/" };
		};
	};
	{
		id = "monal"; name = "Monal"; platforms = { "ios", "macos" };
		text = "A modern chat app for iPhone, iPad and Mac.";
		links = {
			{ label = "App Store"; url = "https://apps.apple.com/app/id317711500" };
		};
	};
	{
		id = "siskin"; name = "Siskin IM"; platforms = { "ios" };
		text = "A lightweight chat app for iPhone and iPad.";
		links = {
			{ label = "App Store"; url = "https://apps.apple.com/app/id1153516838" };
		};
	};
	{
		id = "beagle"; name = "Beagle IM"; platforms = { "macos" };
		text = "A chat app for macOS.";
		links = {
			{ label = "Mac App Store"; url = "https://apps.apple.com/app/id1445349494" };
		};
	};
	{
		id = "gajim"; name = "Gajim"; platforms = { "windows", "linux" };
		text = "A fully-featured desktop chat app for Windows and Linux.";
		links = {
			{ label = "gajim.org"; url = "https://gajim.org/download/" };
		};
	};
	{
		id = "dino"; name = "Dino"; platforms = { "linux" };
		text = "A modern chat app for the Linux desktop.";
		links = {
			{ label = "dino.im"; url = "https://dino.im/#download" };
		};
	};
};
