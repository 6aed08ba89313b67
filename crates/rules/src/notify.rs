//! Telling the inviter: whether the creator of a used invite is told, in which language, and the
//! text of the message.
//!
//! The shim gathers the facts (the option, the audit record's creator, whether that account
//! exists, the languages it knows of the creator) and sends what this module decides.

use crate::jid;

/// How an invite was used, as the audit record says (`registered`, `contact-approved`,
/// `password-reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A new account registered with it (in-band or on the web).
    Registered,
    /// An existing account (local or remote) accepted a contact invite (XEP-0379).
    ContactApproved,
    /// A password was reset with it.
    PasswordReset,
}

impl Use {
    /// Reads the audit record's `how`.
    pub fn parse(how: &str) -> Option<Self> {
        match how {
            "registered" => Some(Self::Registered),
            "contact-approved" => Some(Self::ContactApproved),
            "password-reset" => Some(Self::PasswordReset),
            _ => None,
        }
    }
}

/// What the shim knows when an invite was used.
#[derive(Debug, Clone, Copy)]
pub struct UseFacts<'a> {
    /// `invites_notify_inviter`.
    pub enabled: bool,
    /// The virtual host the invite belongs to.
    pub host: &'a str,
    /// The audit record's creator: a bare JID, or `shell`, `prosodyctl`, `api/token/ID`,
    /// `module`, `unknown`.
    pub creator: &'a str,
    /// `how` of the use.
    pub how: &'a str,
    /// The account that used it (bare JID).
    pub account: &'a str,
    /// Whether the creator's account exists (asked only when the creator names a local account).
    pub creator_exists: bool,
}

/// Why nobody is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// `invites_notify_inviter = false`.
    Disabled,
    /// A password reset: nobody new to tell about.
    NotNewContact,
    /// Made by `prosodyctl`, the shell, an API key or a module: no person to tell.
    NotAnAccount,
    /// Made by an account of another host.
    NotLocal,
    /// The creator's account is gone.
    CreatorGone,
    /// The creator used their own invite.
    OwnUse,
}

impl Silence {
    /// For the shim's debug log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "invites_notify_inviter is off",
            Self::NotNewContact => "a password reset",
            Self::NotAnAccount => "not created by an account",
            Self::NotLocal => "created by an account of another host",
            Self::CreatorGone => "the creator's account is gone",
            Self::OwnUse => "the creator used it",
        }
    }
}

/// The local account (bare JID) to tell about a use, or why nobody is told. Creators that are
/// not JIDs (`shell`, `prosodyctl`, `api/token/ID`, `module`, `unknown`) are never told: a
/// creator is an account only when it is `node@host` of this host.
pub fn recipient<'a>(facts: &UseFacts<'a>) -> Result<&'a str, Silence> {
    if !facts.enabled {
        return Err(Silence::Disabled);
    }
    match Use::parse(facts.how) {
        Some(Use::Registered | Use::ContactApproved) => {}
        Some(Use::PasswordReset) | None => return Err(Silence::NotNewContact),
    }
    if creator_account(facts.creator).is_none() {
        return Err(Silence::NotAnAccount);
    }
    if jid::local_node(facts.creator, facts.host).is_none() {
        return Err(Silence::NotLocal);
    }
    if facts.creator == facts.account {
        return Err(Silence::OwnUse);
    }
    if !facts.creator_exists {
        return Err(Silence::CreatorGone);
    }
    Ok(facts.creator)
}

/// The node of a creator that names an account (`node@host`, no resource), else `None`.
/// `shell`, `prosodyctl`, `api/token/7`, `module` and `unknown` name none.
pub fn creator_account(creator: &str) -> Option<&str> {
    let parts = jid::split(creator);
    match (parts.node, parts.resource) {
        (Some(node), None) if !node.is_empty() && !parts.domain.is_empty() => Some(node),
        _ => None,
    }
}

/// A language the messages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// `en`.
    English,
    /// `de`.
    German,
    /// `fr`.
    French,
}

impl Language {
    /// The tag put on the message (`xml:lang`).
    pub fn tag(self) -> &'static str {
        match self {
            Self::English => "en",
            Self::German => "de",
            Self::French => "fr",
        }
    }

    /// The catalogue's language for a tag (`de`, `de-AT`, `FR_ca`), by its primary subtag.
    pub fn of_tag(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Self::English),
            "de" => Some(Self::German),
            "fr" => Some(Self::French),
            _ => None,
        }
    }
}

/// The language of the message: the first known language among the candidates, most telling
/// first (the creator's online session, then what was last stored for them, then the server's
/// default); English when none is in the catalogue.
pub fn pick_language<'a>(candidates: impl IntoIterator<Item = &'a str>) -> Language {
    candidates.into_iter().find_map(Language::of_tag).unwrap_or(Language::English)
}

/// Whether a group chat outcome (`invite-rooms-applied`) means the account is in the room:
/// made a member, or already one.
pub fn joined(outcome: &str) -> bool {
    matches!(outcome, "granted" | "kept-member" | "kept-admin" | "kept-owner")
}

/// The message to the inviter: `account` used their invite (`how`), and joined `rooms`.
pub fn message(language: Language, how: Use, account: &str, rooms: &[&str]) -> String {
    let mut text = match (language, how) {
        (Language::German, Use::ContactApproved) => {
            format!("{account} hat deine Einladung angenommen und ist jetzt in deinen Kontakten.")
        }
        (Language::German, _) => format!("{account} hat sich mit deiner Einladung angemeldet."),
        (Language::French, Use::ContactApproved) => {
            format!("{account} a accepté ton invitation et fait maintenant partie de tes contacts.")
        }
        (Language::French, _) => format!("{account} s’est inscrit·e avec ton invitation."),
        (Language::English, Use::ContactApproved) => format!("{account} accepted your invite and is now one of your contacts."),
        (Language::English, _) => format!("{account} joined with your invite."),
    };
    if !rooms.is_empty() {
        let list = rooms.join(", ");
        let rooms_text = match language {
            Language::German => format!(" Gruppenchats: {list}."),
            Language::French => format!(" Salons : {list}."),
            Language::English => format!(" Group chats joined: {list}."),
        };
        text.push_str(&rooms_text);
    }
    let hello = match language {
        Language::German => " Sag Hallo!",
        Language::French => " Dis bonjour !",
        Language::English => " Say hello!",
    };
    text.push_str(hello);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(creator: &'a str, how: &'a str) -> UseFacts<'a> {
        UseFacts { enabled: true, host: "example.com", creator, how, account: "bob@example.com", creator_exists: true }
    }

    #[test]
    fn who_is_told() {
        assert_eq!(recipient(&facts("alice@example.com", "registered")), Ok("alice@example.com"));
        assert_eq!(recipient(&facts("alice@example.com", "contact-approved")), Ok("alice@example.com"));
        let cases: &[(&str, &str, Silence)] = &[
            ("alice@example.com", "password-reset", Silence::NotNewContact),
            ("alice@example.com", "bogus", Silence::NotNewContact),
            ("shell", "registered", Silence::NotAnAccount),
            ("prosodyctl", "registered", Silence::NotAnAccount),
            ("api/token/7", "registered", Silence::NotAnAccount),
            ("module", "registered", Silence::NotAnAccount),
            ("unknown", "registered", Silence::NotAnAccount),
            ("@example.com", "registered", Silence::NotAnAccount),
            ("alice@example.com/phone", "registered", Silence::NotAnAccount),
            ("alice@other.example", "registered", Silence::NotLocal),
            ("bob@example.com", "registered", Silence::OwnUse),
        ];
        for (creator, how, why) in cases {
            assert_eq!(recipient(&facts(creator, how)), Err(*why), "{creator} {how}");
        }
        let off = UseFacts { enabled: false, ..facts("alice@example.com", "registered") };
        assert_eq!(recipient(&off), Err(Silence::Disabled));
        let gone = UseFacts { creator_exists: false, ..facts("alice@example.com", "registered") };
        assert_eq!(recipient(&gone), Err(Silence::CreatorGone));
    }

    #[test]
    fn languages() {
        assert_eq!(pick_language(["de-AT"]), Language::German);
        assert_eq!(pick_language(["xx", "FR_ca", "de"]), Language::French);
        assert_eq!(pick_language(["", "ja"]), Language::English);
        assert_eq!(pick_language([]), Language::English);
        assert_eq!(Language::of_tag("en-GB").map(Language::tag), Some("en"));
    }

    #[test]
    fn texts() {
        assert_eq!(
            message(Language::English, Use::Registered, "bob@example.com", &[]),
            "bob@example.com joined with your invite. Say hello!"
        );
        assert_eq!(
            message(Language::English, Use::Registered, "bob@example.com", &["a@muc.example.com", "b@muc.example.com"]),
            "bob@example.com joined with your invite. Group chats joined: a@muc.example.com, b@muc.example.com. Say hello!"
        );
        assert_eq!(
            message(Language::German, Use::ContactApproved, "bob@example.org", &[]),
            "bob@example.org hat deine Einladung angenommen und ist jetzt in deinen Kontakten. Sag Hallo!"
        );
        assert!(message(Language::French, Use::Registered, "b@x", &["r@m"]).contains("Salons : r@m."));
    }

    #[test]
    fn outcomes_that_count_as_joined() {
        for outcome in ["granted", "kept-member", "kept-admin", "kept-owner"] {
            assert!(joined(outcome), "{outcome}");
        }
        for outcome in ["banned", "room-gone", "not-allowed", ""] {
            assert!(!joined(outcome), "{outcome}");
        }
    }
}
