-- mod_invites_web: HTML building blocks. Everything that comes from a visitor, an invite or the
-- configuration goes through esc() (or a catalogue's {placeholders}, which escape too).
local st = require "util.stanza";

local html = {};

local function esc(value)
	return st.xml_escape(tostring(value == nil and "" or value));
end
html.esc = esc;

-- ctx: { t = translate, lang, base (path of the module, no trailing slash), site, nav, csrf }
function html.layout(ctx, title, body)
	local nav = {};
	for _, item in ipairs(ctx.nav or {}) do
		nav[#nav + 1] = ('<a href="%s">%s</a>'):format(esc(item[1]), esc(item[2]));
	end
	return table.concat({
		'<!DOCTYPE html>\n<html lang="', esc(ctx.lang), '"><head><meta charset="utf-8">',
		'<meta name="viewport" content="width=device-width, initial-scale=1">',
		'<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">',
		'<title>', esc(title), ' · ', esc(ctx.site), '</title>',
		'<link rel="stylesheet" href="', esc(ctx.base), '/static/invites.css">',
		'<script src="', esc(ctx.base), '/static/invites.js" defer></script>',
		'</head><body><a class="skip" href="#main">', ctx.t("skip"), '</a>',
		'<header class="site"><span class="brand">', esc(ctx.site), '</span>',
		#nav > 0 and ('<nav aria-label="Site">' .. table.concat(nav) .. '</nav>') or '',
		'</header><main id="main"><h1>', esc(title), '</h1>', body, '</main>',
		'<footer class="site">', ctx.t("site_footer", { site = ctx.site }), '</footer></body></html>\n',
	});
end

function html.p(text, class)
	return ('<p%s>%s</p>'):format(class and (' class="' .. class .. '"') or "", text);
end

-- A form posting to `action` with its CSRF token; `fields` is markup. opts: { inline = true,
-- button = "danger" | "secondary" }.
function html.form(ctx, action, fields, submit, opts)
	opts = opts or {};
	return ('<form method="post" action="%s"%s><input type="hidden" name="csrf" value="%s">%s'
		.. '<button type="submit"%s>%s</button></form>'):format(esc(action), opts.inline and ' class="inline"' or "",
		esc(ctx.csrf), fields, opts.button and (' class="' .. opts.button .. '"') or "", esc(submit));
end

function html.hidden(name, value)
	return ('<input type="hidden" name="%s" value="%s">'):format(esc(name), esc(value));
end

-- A labelled input; opts: { type, value, autocomplete, required, help, readonly }
function html.input(id, label, opts)
	opts = opts or {};
	local help = opts.help and ('<p class="help" id="%s-help">%s</p>'):format(id, opts.help) or "";
	return ('<label for="%s">%s</label><input id="%s" name="%s" type="%s" value="%s"%s%s%s>%s'):format(
		id, esc(label), id, id, opts.type or "text", esc(opts.value),
		opts.autocomplete and (' autocomplete="' .. opts.autocomplete .. '"') or "",
		opts.required and " required" or "",
		opts.help and (' aria-describedby="' .. id .. '-help"') or "", help);
end

function html.select(id, label, options, selected)
	local out = { ('<label for="%s">%s</label><select id="%s" name="%s">'):format(id, esc(label), id, id) };
	for _, option in ipairs(options) do
		out[#out + 1] = ('<option value="%s"%s>%s</option>'):format(esc(option[1]),
			option[1] == selected and " selected" or "", esc(option[2]));
	end
	out[#out + 1] = "</select>";
	return table.concat(out);
end

function html.error(message)
	return message and ('<p class="error" role="alert">%s</p>'):format(message) or "";
end

-- A link to share with its QR code (markup from the core, which escapes the title itself).
function html.share(ctx, link, qr_markup)
	return table.concat({
		'<div class="share"><p class="help">', ctx.t("share_help"), '</p>',
		'<p><strong>', ctx.t("invite_link"), ':</strong> <a class="link" href="', esc(link), '">', esc(link), '</a></p>',
		qr_markup and ('<div class="qr">' .. qr_markup .. '</div>') or "",
		'</div>',
	});
end

function html.date(t)
	return t and os.date("!%Y-%m-%d %H:%M UTC", t) or "–";
end

return html;
