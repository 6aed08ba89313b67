//! The configuration check (`prosodyctl mod_invites check [HOST]`, `invite check HOST`, and the
//! warnings at module load): which facts about a host make invites fail, and what to change.
//!
//! The shim gathers the facts (options, which modules are enabled or loaded, components, the
//! group chats pending invites carry); every decision is here.

use std::collections::BTreeMap;

use crate::net::entry_prefix;
use crate::register::registration_possible;

/// Authentication backends known to create no accounts (Prosody's and the community's).
const AUTH_WITHOUT_ACCOUNTS: &[&str] = &[
    "anonymous",
    "ldap",
    "ldap2",
    "external",
    "external_insecure",
    "cyrus",
    "ccert",
    "dovecot",
    "imap",
    "http",
    "http_async",
    "http_cookie",
    "custom_http",
    "oauth_external",
    "token",
    "ha1",
    "pam",
    "wordpress",
    "joomla",
    "phpbb3",
    "smf",
    "sasl",
];

/// Modules that bring Prosody's HTTP server with them.
const HTTP_MODULES: &[&str] = &[
    "http",
    "bosh",
    "websocket",
    "invites_page",
    "invites_register_web",
    "invites_web",
    "invites_api",
    "register_apps",
    "register_web",
    "http_files",
    "http_libjs",
    "http_openmetrics",
    "admin_web",
];

/// What the shim knows about one host.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The virtual host.
    pub host: String,
    /// `authentication` (default `internal_hashed`).
    pub authentication: String,
    /// Whether the running server's auth provider can create accounts (`None`: not running, or
    /// cannot tell).
    pub auth_creates: Option<bool>,
    /// Modules enabled for the host in the configuration (global list and the host's merged,
    /// disabled ones removed).
    pub enabled: Vec<String>,
    /// Modules loaded on the host, when the server is running (then they win over `enabled`:
    /// dependencies count too).
    pub loaded: Option<Vec<String>>,
    /// `registration_invite_only` (default true).
    pub invite_only: bool,
    /// `allow_registration` (default false).
    pub allow_registration: bool,
    /// `invites_page` (Prosody 13's landing page template).
    pub invites_page: Option<String>,
    /// `http_external_url`.
    pub http_external_url: Option<String>,
    /// `http_host`.
    pub http_host: Option<String>,
    /// Hosts of this server that are MUC components.
    pub muc_components: Vec<String>,
    /// Group chats carried by pending invites: room JID → how many invites carry it.
    pub pending_rooms: BTreeMap<String, u32>,
    /// The pre-auth throttle's exemptions and the option they came from.
    pub exempt: Vec<String>,
    /// The option those exemptions came from.
    pub exempt_option: String,
    /// `c2s_require_encryption` / `require_encryption` (default true).
    pub require_encryption: bool,
    /// `invites_notify_inviter`.
    pub notify_inviter: bool,
}

/// One problem and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A stable name (`auth-creates-no-accounts`, …), for tests and scripts.
    pub code: &'static str,
    /// One line: what is wrong and what to change.
    pub text: String,
}

impl Facts {
    fn on(&self, module: &str) -> bool {
        match &self.loaded {
            Some(loaded) => loaded.iter().any(|m| m == module),
            None => self.enabled.iter().any(|m| m == module),
        }
    }

    /// In-band registration is loaded (mod_register loads mod_register_ibr with
    /// `allow_registration`; mod_invites_register needs it when registration is invite-only).
    fn ibr(&self) -> bool {
        if self.loaded.is_some() {
            return self.on("register_ibr");
        }
        self.on("register_ibr")
            || (self.on("register") && self.allow_registration)
            || (self.on("invites_register") && self.invite_only)
    }

    fn http(&self) -> bool {
        if self.loaded.is_some() {
            return self.on("http");
        }
        HTTP_MODULES.iter().any(|m| self.on(m)) || self.enabled.iter().any(|m| m.starts_with("http_"))
    }

    /// Host names that mean "this server" in a URL.
    fn own_names(&self) -> Vec<String> {
        let mut names = vec![self.host.to_ascii_lowercase()];
        names.extend(self.http_host.iter().map(|h| h.to_ascii_lowercase()));
        names.extend(self.http_external_url.as_deref().and_then(url_host));
        names
    }
}

/// The host part of an `http(s)://` URL (or template), lowercased.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty() && !host.contains('{')).then(|| host.to_ascii_lowercase())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.ends_with(".localhost") || host.starts_with("127.") || host == "::1"
}

/// Every finding for one host, in a fixed order.
pub fn findings(facts: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut say = |code: &'static str, text: String| out.push(Finding { code, text });
    let host = &facts.host;

    // Accounts cannot be made at all.
    let auth = facts.authentication.as_str();
    if AUTH_WITHOUT_ACCOUNTS.contains(&auth) || facts.auth_creates == Some(false) {
        say(
            "auth-creates-no-accounts",
            format!(
                "authentication = \"{auth}\" cannot create accounts, so account invites on {host} cannot be used: \
                 use a backend that can (\"internal_hashed\") or hand out contact invites only"
            ),
        );
    }

    // Nothing registers with an invite.
    // Web sign-up: the community's mod_invites_register_web, or this project's mod_invites_web.
    let web = facts.on("invites_register_web") || facts.on("invites_web");
    if !facts.on("invites_register") {
        say(
            "invites-register-missing",
            format!(
                "mod_invites_register is not enabled on {host}: invites cannot create accounts; add \"invites_register\" to modules_enabled"
            ),
        );
    } else if !registration_possible(true, facts.ibr(), web) {
        say(
            "nothing-registers",
            format!(
                "nothing can register on {host} (no in-band registration, no web sign-up), so account invites and ;ibr=y \
                 cannot be used: set registration_invite_only = true (the default) or allow_registration = true, or enable invites_web"
            ),
        );
    }

    // Registration open to anyone.
    if !facts.invite_only && facts.ibr() {
        say(
            "open-registration",
            format!(
                "registration_invite_only = false: anyone can register on {host} without an invite; remove it (the default is true) unless open registration is intended"
            ),
        );
    }

    // Landing pages.
    if let Some(template) = facts.invites_page.as_deref() {
        let target = url_host(template);
        let ours = target.as_ref().is_some_and(|t| facts.own_names().contains(t));
        if ours && !facts.http() {
            say(
                "landing-page-without-http",
                format!(
                    "invites_page points at this server ({}) but its HTTP server is not loaded on {host}: add \"http\" (and the page module) to modules_enabled, or point invites_page elsewhere",
                    target.as_deref().unwrap_or_default()
                ),
            );
        }
        if !template.contains("{invite.") {
            say(
                "landing-page-without-invite",
                "invites_page has no {invite.uri} or {invite.token}: every invite would get the same page; add one, e.g. \"https://example.org/#{invite.uri}\"".to_owned(),
            );
        }
        if template.starts_with("http://") && !target.as_deref().is_some_and(is_loopback) {
            say(
                "landing-page-plain-http",
                format!("invites_page uses http://: invite tokens travel in clear; use an https:// URL ({template})"),
            );
        }
    }
    if let Some(url) = facts.http_external_url.as_deref()
        && url.starts_with("http://")
        && !url_host(url).as_deref().is_some_and(is_loopback)
        && (facts.on("invites_page") || facts.on("invites_register_web") || facts.on("invites_web"))
    {
        say(
            "landing-page-plain-http",
            format!(
                "http_external_url uses http:// while invite pages are served: invite tokens travel in clear; use https:// ({url})"
            ),
        );
    }

    // Group chats.
    let mut missing: BTreeMap<String, u32> = BTreeMap::new();
    for (room, count) in &facts.pending_rooms {
        let room_host = room.split_once('@').map_or(room.as_str(), |(_, h)| h).split('/').next().unwrap_or_default();
        if !facts.muc_components.iter().any(|c| c == room_host) {
            *missing.entry(room_host.to_owned()).or_default() += count;
        }
    }
    for (room_host, count) in &missing {
        say(
            "rooms-without-muc",
            format!(
                "{count} pending invite(s) on {host} carry group chats on {room_host}, which is not a MUC component of this server: \
                 add Component \"{room_host}\" \"muc\", or revoke them"
            ),
        );
    }
    let rooms_possible = !facts.pending_rooms.is_empty() || !facts.muc_components.is_empty();
    if !facts.on("offline") && (rooms_possible || facts.notify_inviter) {
        let lost = match (rooms_possible, facts.notify_inviter) {
            (true, true) => "group chat invitations to new accounts and notifications to inviters who are offline are lost",
            (true, false) => "group chat invitations sent before a new account's first login are lost",
            _ => "inviters who are offline when their invite is used are never told",
        };
        say(
            "offline-missing",
            format!(
                "mod_offline is not loaded on {host}: {lost}; remove \"offline\" from modules_disabled (it is loaded by default)"
            ),
        );
    }

    // The pre-auth throttle.
    for entry in &facts.exempt {
        match entry_prefix(entry) {
            None => say(
                "exempt-not-a-network",
                format!("{} contains \"{entry}\", which is not an address or network: fix or remove it", facts.exempt_option),
            ),
            Some((width, bits)) if bits == 0 || (width == 32 && bits < 8) || (width == 128 && bits < 16) => {
                let how_much = if bits == 0 { "the whole Internet" } else { "a large part of the Internet" };
                say(
                    "exempt-everyone",
                    format!(
                        "{} contains {entry}: {how_much} is exempt from the pre-auth throttle, so token guessing is never slowed; list only your own networks",
                        facts.exempt_option
                    ),
                );
            }
            Some(_) => {}
        }
    }

    // Tokens on unencrypted streams.
    if !facts.require_encryption && facts.on("invites_register") {
        say(
            "unencrypted-invites",
            format!(
                "c2s_require_encryption = false: invite tokens and new passwords on {host} may travel unencrypted; remove it (the default is true)"
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Facts {
        Facts {
            host: "example.org".into(),
            authentication: "internal_hashed".into(),
            enabled: ["roster", "saslauth", "invites", "invites_register", "invites_adhoc", "offline"].map(String::from).to_vec(),
            invite_only: true,
            require_encryption: true,
            notify_inviter: true,
            exempt: vec!["127.0.0.1".into(), "::1".into()],
            exempt_option: "invites_preauth_exempt".into(),
            ..Facts::default()
        }
    }

    fn codes(facts: &Facts) -> Vec<&'static str> {
        findings(facts).into_iter().map(|f| f.code).collect()
    }

    #[test]
    fn a_clean_host_has_none() {
        assert_eq!(findings(&clean()), []);
        let running = Facts { loaded: Some([clean().enabled, vec!["register_ibr".into()]].concat()), ..clean() };
        assert_eq!(findings(&running), []);
    }

    #[test]
    fn each_finding() {
        let cases: Vec<(Facts, &[&str])> = vec![
            (Facts { authentication: "ldap".into(), ..clean() }, &["auth-creates-no-accounts"]),
            (Facts { auth_creates: Some(false), ..clean() }, &["auth-creates-no-accounts"]),
            (Facts { enabled: vec!["invites".into(), "offline".into()], ..clean() }, &["invites-register-missing"]),
            (Facts { invite_only: false, ..clean() }, &["nothing-registers"]),
            (Facts { invite_only: false, enabled: [clean().enabled, vec!["invites_web".into()]].concat(), ..clean() }, &[]),
            (
                Facts {
                    invite_only: false,
                    allow_registration: true,
                    enabled: [clean().enabled, vec!["register".into()]].concat(),
                    ..clean()
                },
                &["open-registration"],
            ),
            (
                Facts { invites_page: Some("https://example.org/invite/{invite.token}".into()), ..clean() },
                &["landing-page-without-http"],
            ),
            (Facts { invites_page: Some("https://elsewhere.example/#{invite.uri}".into()), ..clean() }, &[]),
            (Facts { invites_page: Some("https://elsewhere.example/".into()), ..clean() }, &["landing-page-without-invite"]),
            (
                Facts { invites_page: Some("http://elsewhere.example/{invite.token}".into()), ..clean() },
                &["landing-page-plain-http"],
            ),
            (Facts { pending_rooms: BTreeMap::from([("a@muc.example.org".into(), 2)]), ..clean() }, &["rooms-without-muc"]),
            (
                Facts {
                    pending_rooms: BTreeMap::from([("a@muc.example.org".into(), 2)]),
                    muc_components: vec!["muc.example.org".into()],
                    ..clean()
                },
                &[],
            ),
            (Facts { enabled: vec!["invites".into(), "invites_register".into()], ..clean() }, &["offline-missing"]),
            (Facts { enabled: vec!["invites".into(), "invites_register".into()], notify_inviter: false, ..clean() }, &[]),
            (Facts { exempt: vec!["0.0.0.0/0".into()], ..clean() }, &["exempt-everyone"]),
            (
                Facts { exempt: vec!["::/0".into(), "2000::/3".into(), "10.0.0.0/8".into()], ..clean() },
                &["exempt-everyone", "exempt-everyone"],
            ),
            (Facts { exempt: vec!["nonsense".into()], ..clean() }, &["exempt-not-a-network"]),
            (Facts { require_encryption: false, ..clean() }, &["unencrypted-invites"]),
        ];
        for (facts, expected) in cases {
            assert_eq!(codes(&facts), expected, "{facts:?}");
        }
    }

    #[test]
    fn texts_say_what_to_change() {
        let f = findings(&Facts { exempt: vec!["0.0.0.0/0".into()], ..clean() });
        assert_eq!(
            f[0].text,
            "invites_preauth_exempt contains 0.0.0.0/0: the whole Internet is exempt from the pre-auth throttle, so token guessing is never slowed; list only your own networks"
        );
        let f = findings(&Facts {
            invite_only: false,
            allow_registration: true,
            enabled: [clean().enabled, vec!["register".into()]].concat(),
            ..clean()
        });
        assert!(f[0].text.contains("registration_invite_only = false"), "{f:?}");
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://Chat.Example.org:5281/x"), Some("chat.example.org".into()));
        assert_eq!(url_host("https://[::1]:80/"), Some("::1".into()));
        assert_eq!(url_host("https://{host}/x"), None);
        assert_eq!(url_host("nonsense"), None);
    }
}
