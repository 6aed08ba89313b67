-- mod_invites_web: the only assets its pages load, served by the module itself (no CDN, no other
-- site): one stylesheet and one small script. The pages work without the script.
local assets = {};

assets["invites.css"] = [[
:root { --fg: #1a1a1a; --bg: #fafafa; --accent: #0b57a4; --accent-fg: #fff; --muted: #4a4a4a;
  --card: #fff; --line: #c8c8c8; --bad: #a4161a; --good: #1b5e20; }
* { box-sizing: border-box; }
html { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; font-size: 100%;
  line-height: 1.5; color: var(--fg); background: var(--bg); }
body { margin: 0; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: var(--card); padding: .5rem; }
header.site, footer.site { padding: .75rem 1rem; }
header.site { background: var(--accent); color: var(--accent-fg); }
header.site a { color: var(--accent-fg); }
header.site .brand { font-weight: 700; font-size: 1.15rem; text-decoration: none; }
header.site nav { float: right; }
header.site nav a { margin-left: 1rem; }
footer.site { color: var(--muted); font-size: .9rem; text-align: center; }
main { max-width: 46rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: .5rem 0 1rem; }
h2 { font-size: 1.25rem; margin: 1.5rem 0 .5rem; }
h3 { font-size: 1.05rem; margin: .75rem 0 .25rem; }
a { color: var(--accent); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: .5rem; padding: 1rem; margin: 1rem 0; }
.card > h2:first-child { margin-top: 0; }
.button, button { display: inline-block; background: var(--accent); color: var(--accent-fg); border: 0;
  border-radius: .4rem; padding: .7rem 1.2rem; font: inherit; font-weight: 600; text-decoration: none;
  cursor: pointer; min-height: 2.75rem; }
.button.big { font-size: 1.15rem; padding: .9rem 1.6rem; width: 100%; text-align: center; }
button.secondary, .button.secondary { background: var(--card); color: var(--accent); border: 2px solid var(--accent); }
button.danger { background: var(--bad); }
.button:focus, button:focus, a:focus, input:focus, select:focus, textarea:focus { outline: 3px solid #f5a623; outline-offset: 2px; }
.help { color: var(--muted); font-size: .95rem; }
.error { color: var(--bad); font-weight: 600; }
.ok { color: var(--good); font-weight: 600; }
label { display: block; font-weight: 600; margin: .75rem 0 .25rem; }
input[type=text], input[type=password], input[type=number], select, textarea {
  width: 100%; font: inherit; padding: .55rem; border: 1px solid #767676; border-radius: .3rem; background: #fff; color: var(--fg); }
.fixed { font-family: ui-monospace, monospace; font-weight: 600; }
.apps details { border-top: 1px solid var(--line); padding: .5rem 0; }
.apps summary { cursor: pointer; font-weight: 600; }
.app { margin: .5rem 0 1rem; }
.app .links { list-style: none; padding: 0; margin: .25rem 0; }
.app .links li { margin: .35rem 0; }
.apps details.platform-mine { border: 2px solid var(--accent); border-radius: .5rem; padding: .5rem 1rem; }
.qr svg { width: 100%; max-width: 16rem; height: auto; display: block; margin: .5rem auto; }
.link { word-break: break-all; font-family: ui-monospace, monospace; font-size: .9rem; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { text-align: left; padding: .4rem; border-bottom: 1px solid var(--line); vertical-align: top; }
.inline { display: inline; }
.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: flex-end; }
.filters label { margin: 0; }
.filters > div { min-width: 9rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; word-break: break-all; }
@media (max-width: 40rem) {
  .desktop-only { display: none; }
  header.site nav { float: none; display: block; }
  header.site nav a { margin: 0 1rem 0 0; }
  table.responsive thead { display: none; }
  table.responsive tr { display: block; border-bottom: 1px solid var(--line); padding: .25rem 0; }
  table.responsive td { display: block; border: 0; padding: .1rem .25rem; }
}
]];

-- Refines the server's guess of the visitor's platform (the app list order) where the browser
-- tells more (an iPad asking for the desktop site reports "Macintosh"), and copies the invite link.
assets["invites.js"] = [[
(function () {
  "use strict";
  var list = document.getElementById("apps");
  if (!list) { return; }
  var ua = navigator.userAgent || "";
  var hint = (navigator.userAgentData && navigator.userAgentData.platform) || navigator.platform || "";
  var platform = null;
  if (/android/i.test(ua) || /android/i.test(hint)) { platform = "android"; }
  else if (/iphone|ipad|ipod/i.test(ua) || (/mac/i.test(hint) && navigator.maxTouchPoints > 1)) { platform = "ios"; }
  else if (/mac/i.test(hint)) { platform = "macos"; }
  else if (/win/i.test(hint)) { platform = "windows"; }
  else if (/linux|x11|cros/i.test(hint)) { platform = "linux"; }
  if (!platform || list.getAttribute("data-platform") === platform) { return; }
  var section = list.querySelector('[data-platform="' + platform + '"]');
  if (!section) { return; }
  var mine = list.querySelector(".platform-mine");
  if (mine) { mine.classList.remove("platform-mine"); mine.removeAttribute("open"); }
  section.classList.add("platform-mine");
  section.setAttribute("open", "");
  list.insertBefore(section, list.querySelector("details"));
  list.setAttribute("data-platform", platform);
})();
]];

assets.types = {
	css = "text/css; charset=utf-8";
	js = "text/javascript; charset=utf-8";
};

return assets;
