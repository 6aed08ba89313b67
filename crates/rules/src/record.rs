//! The invite record: the one model of what the `invite_token` store holds at host level, as
//! [`crate::invite::create`] builds it and as a read gives it back; and the classification of
//! any invite table (record, created or validated invite) for audit records and statistics.

use std::borrow::Cow;

use crate::jid::{self, node_of};

/// What an invite is for; stored as the record's `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteType {
    /// Register an account (any name, or one given name), possibly a password reset.
    Register,
    /// Become a contact of the inviter (XEP-0379), possibly registering an account first.
    Roster,
}

impl InviteType {
    /// The `type` string stored in records and used as the URI action.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Roster => "roster",
        }
    }

    /// Reads a stored `type` field.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "register" => Some(Self::Register),
            "roster" => Some(Self::Roster),
            _ => None,
        }
    }
}

/// Whether an invite expiring at `expires` may still be used at `now` (inclusive, as stock `get`).
pub fn is_current(expires: i64, now: i64) -> bool {
    now <= expires
}

/// A host-level invite record: the fields the rules are about. Records carry more
/// (`landing_page`, the rest of `additional_data`, whatever `invite-created` handlers add); the
/// caller keeps those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `type`.
    pub kind: InviteType,
    /// `jid`: the host, `user@host` for restricted account invites, the inviter for contact ones.
    pub jid: String,
    /// The token: the record's storage key.
    pub token: String,
    /// `allow_registration`.
    pub allow_registration: bool,
    /// `uri`: the `xmpp:` URI to share; absent in hand-made records.
    pub uri: Option<String>,
    /// `created_at`, Unix seconds; absent in hand-made records.
    pub created_at: Option<i64>,
    /// `expires`, Unix seconds; the invite is valid up to and including this second.
    pub expires: i64,
    /// `reusable`. Stock stores the field only for group invites, so a new record leaves it out
    /// (`None`) unless asked, to stay byte-for-byte alike.
    pub reusable: Option<bool>,
    /// `additional_data.allow_reset` is set: a password-reset invite.
    pub allow_reset: bool,
    /// `additional_data.roster_subscription`: the bare JID of an account invite's creator who
    /// asked (XEP-0401 `roster-subscription`) to become the new account's contact.
    pub roster_subscription: Option<String>,
}

impl Record {
    /// Whether the record is stored at host level (every invite that can register an account).
    pub fn stored_at_host_level(&self) -> bool {
        self.allow_registration
    }

    /// The user whose user-level map holds this token (contact invites only).
    pub fn contact_owner(&self) -> Option<&str> {
        match self.kind {
            InviteType::Roster => node_of(&self.jid),
            InviteType::Register => None,
        }
    }

    /// The username the per-invite layout indexes this record under (store `invites_by_name`), so
    /// that checking a name or deleting an account reads only that name's invites: the node of an
    /// account or reset invite restricted to one account. Contact invites are found through their
    /// inviter's user-level entry instead.
    pub fn name_key(&self) -> Option<&str> {
        match self.kind {
            InviteType::Register => node_of(&self.jid),
            InviteType::Roster => None,
        }
    }

    /// Whether the invite may be used many times until it expires.
    pub fn is_reusable(&self) -> bool {
        self.reusable == Some(true)
    }

    /// The username this record reserves at `now`: a pending account invite restricted to a name
    /// reserves it until it expires (XEP-0445). Reset invites never create the account, so they
    /// reserve nothing.
    pub fn reserves(&self, now: i64) -> Option<&str> {
        if self.kind != InviteType::Register || self.allow_reset || !is_current(self.expires, now) {
            return None;
        }
        node_of(&self.jid)
    }

    /// What the classification reads of this record.
    pub fn facts(&self) -> InviteFacts<'_> {
        InviteFacts {
            kind: Field::Text(self.kind.as_str().as_bytes()),
            allow_registration: self.allow_registration,
            allow_reset: self.allow_reset,
            source: None,
            max_uses: MaxUses::Absent,
            jid: Field::Text(self.jid.as_bytes()),
            inviter: Field::Missing,
            username: Field::Missing,
        }
    }
}

/// What an invite is, for its audit record and the `created` statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteKind {
    /// Registers an account.
    Account,
    /// Resets an account's password.
    Reset,
    /// Makes the invitee a contact of the inviter.
    Contact,
    /// Registers an account that becomes the inviter's contact.
    AccountAndContact,
}

impl InviteKind {
    /// The name audit records and statistics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Reset => "reset",
            Self::Contact => "contact",
            Self::AccountAndContact => "account-and-contact",
        }
    }

    /// The kind Prosody 13's `invites_page_supports` names: a reset invite is an account one,
    /// a contact invite without registration `contact-only` (stock 13's words; its default list
    /// says `contact`, so such invites get no landing page unless an operator lists it).
    pub fn page_kind(self) -> &'static str {
        match self {
            Self::Account | Self::Reset => "account",
            Self::Contact => "contact-only",
            Self::AccountAndContact => "account-and-contact",
        }
    }
}

/// A field of an invite table as the classification reads it. Lua strings are bytes, so the
/// text is too: the rules below compare and split it, never decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// `nil` or `false`.
    Missing,
    /// A string; for `inviter` and `username` also a number as Lua prints it (creators are
    /// made of those; `jid` is split as a JID, which a number is not).
    Text(&'a [u8]),
    /// Anything else: unusable, an error when the classification comes to use it.
    Other,
}

/// Classification met a field it cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JunkField(pub &'static str);

impl std::fmt::Display for JunkField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the invite's '{}' field is not text", self.0)
    }
}

impl std::error::Error for JunkField {}

/// `additional_data.max_uses` as stored or given: the one reading of the field, for creation
/// (which refuses anything but a whole number from 1), classification, registration and the
/// lifecycle alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MaxUses {
    /// Not given: no use limit beyond the invite's kind.
    #[default]
    Absent,
    /// A whole number (a Lua integer).
    Whole(i64),
    /// Anything else (a float, even 2.0; a string): refused at creation, no limit when stored.
    NotWhole,
}

impl MaxUses {
    /// The use limit it sets: a whole number from 1 (larger than `u32::MAX` is `u32::MAX`).
    pub fn limit(self) -> Option<u32> {
        match self {
            Self::Whole(n) if n >= 1 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            _ => None,
        }
    }
}

/// What classifying an invite reads: the fields of a stored record, of a new one or of a
/// validated invite, each as Lua reads it (an `additional_data` that is not a table is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InviteFacts<'a> {
    /// `type`.
    pub kind: Field<'a>,
    /// `allow_registration` is truthy.
    pub allow_registration: bool,
    /// `additional_data.allow_reset` is truthy.
    pub allow_reset: bool,
    /// `additional_data.source` when it is a string: who made the invite (a JID, or "shell",
    /// "prosodyctl", "api/token/ID").
    pub source: Option<&'a [u8]>,
    /// `additional_data.max_uses`.
    pub max_uses: MaxUses,
    /// `jid`.
    pub jid: Field<'a>,
    /// `inviter` (validated invites).
    pub inviter: Field<'a>,
    /// `username` (validated invites).
    pub username: Field<'a>,
}

impl<'a> InviteFacts<'a> {
    fn is_roster(&self) -> bool {
        self.kind == Field::Text(b"roster")
    }

    /// Account, reset, contact or account-and-contact.
    pub fn kind(&self) -> InviteKind {
        match (self.is_roster(), self.allow_registration, self.allow_reset) {
            (true, true, _) => InviteKind::AccountAndContact,
            (true, false, _) => InviteKind::Contact,
            (false, _, true) => InviteKind::Reset,
            (false, _, false) => InviteKind::Account,
        }
    }

    /// Who made it: a non-empty `source` (as a bare JID when it contains '@' and is a JID),
    /// else for a contact invite the inviter at `host` ("unknown" when nothing names one), else
    /// "module".
    pub fn creator(&self, host: &str) -> Result<Cow<'a, [u8]>, JunkField> {
        if let Some(source) = self.source.filter(|source| !source.is_empty()) {
            let bare = if source.contains(&b'@') { jid::bare_raw(source) } else { None };
            return Ok(bare.unwrap_or(Cow::Borrowed(source)));
        }
        if !self.is_roster() {
            return Ok(Cow::Borrowed(b"module"));
        }
        let node = match self.jid {
            Field::Missing => None,
            Field::Text(jid) => jid::split_raw(jid).and_then(|(node, _)| node),
            Field::Other => return Err(JunkField("jid")),
        };
        let inviter = match (node, self.inviter, self.username) {
            (Some(node), _, _) => node,
            (None, Field::Text(inviter), _) => inviter,
            (None, Field::Other, _) => return Err(JunkField("inviter")),
            (None, Field::Missing, Field::Text(username)) => username,
            (None, Field::Missing, Field::Other) => return Err(JunkField("username")),
            (None, Field::Missing, Field::Missing) => return Ok(Cow::Borrowed(b"unknown")),
        };
        Ok(Cow::Owned([inviter, b"@", host.as_bytes()].concat()))
    }

    /// The use limit ([`MaxUses::limit`]).
    pub fn max_uses(&self) -> Option<u32> {
        self.max_uses.limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "example.com";

    fn facts() -> InviteFacts<'static> {
        InviteFacts {
            kind: Field::Text(b"register"),
            allow_registration: true,
            allow_reset: false,
            source: None,
            max_uses: MaxUses::Absent,
            jid: Field::Text(b"example.com"),
            inviter: Field::Missing,
            username: Field::Missing,
        }
    }

    fn creator(facts: &InviteFacts<'_>) -> Result<String, JunkField> {
        facts.creator(HOST).map(|c| String::from_utf8_lossy(&c).into_owned())
    }

    #[test]
    fn kinds() {
        let roster = |allow_registration| InviteFacts { kind: Field::Text(b"roster"), allow_registration, ..facts() };
        assert_eq!(roster(true).kind(), InviteKind::AccountAndContact);
        assert_eq!(roster(false).kind(), InviteKind::Contact);
        // allow_reset only matters for non-roster invites, whatever their type says.
        assert_eq!(InviteFacts { allow_reset: true, ..roster(false) }.kind(), InviteKind::Contact);
        assert_eq!(InviteFacts { allow_reset: true, ..facts() }.kind(), InviteKind::Reset);
        assert_eq!(facts().kind(), InviteKind::Account);
        for junk in [Field::Missing, Field::Other, Field::Text(b"Roster"), Field::Text(b"junk")] {
            assert_eq!(InviteFacts { kind: junk, ..roster(true) }.kind(), InviteKind::Account, "{junk:?}");
        }
        assert_eq!(
            ["account", "reset", "contact", "account-and-contact"],
            [InviteKind::Account, InviteKind::Reset, InviteKind::Contact, InviteKind::AccountAndContact].map(InviteKind::as_str)
        );
    }

    #[test]
    fn creators() {
        let with_source = |source: &'static [u8]| InviteFacts { source: Some(source), ..facts() };
        let cases: [(&[u8], &str); 8] = [
            (b"admin@example.com/laptop", "admin@example.com"),
            (b"admin@example.com", "admin@example.com"),
            (b"shell", "shell"),
            (b"api/token/7", "api/token/7"),
            (b"not@a@jid", "not@a@jid"),
            (b"@odd", "@odd"),
            (b"shell/a@b", "shell"),
            (b"x\xff@example.com", "x\u{fffd}@example.com"),
        ];
        for (source, expected) in cases {
            assert_eq!(creator(&with_source(source)), Ok(expected.to_owned()), "{source:?}");
        }
        assert_eq!(creator(&with_source(b"")), Ok("module".into()), "an empty source is none");
        assert_eq!(creator(&facts()), Ok("module".into()));

        let roster = InviteFacts { kind: Field::Text(b"roster"), jid: Field::Text(b"alice@example.com"), ..facts() };
        assert_eq!(creator(&roster), Ok("alice@example.com".into()));
        assert_eq!(creator(&InviteFacts { source: Some(b"bob@example.com"), ..roster }), Ok("bob@example.com".into()));
        let no_jid = InviteFacts { jid: Field::Missing, ..roster };
        assert_eq!(creator(&no_jid), Ok("unknown".into()));
        assert_eq!(creator(&InviteFacts { jid: Field::Text(b"example.com"), ..roster }), Ok("unknown".into()));
        assert_eq!(creator(&InviteFacts { inviter: Field::Text(b"carol"), ..no_jid }), Ok("carol@example.com".into()));
        assert_eq!(creator(&InviteFacts { username: Field::Text(b"dave"), ..no_jid }), Ok("dave@example.com".into()));
        assert_eq!(creator(&InviteFacts { inviter: Field::Text(b""), ..no_jid }), Ok("@example.com".into()));
        assert_eq!(creator(&InviteFacts { inviter: Field::Text(b"5"), ..no_jid }), Ok("5@example.com".into()));
        // Where the Lua raised.
        assert_eq!(creator(&InviteFacts { jid: Field::Other, ..roster }), Err(JunkField("jid")));
        assert_eq!(
            creator(&InviteFacts { inviter: Field::Other, username: Field::Text(b"d"), ..no_jid }),
            Err(JunkField("inviter"))
        );
        assert_eq!(creator(&InviteFacts { username: Field::Other, ..no_jid }), Err(JunkField("username")));
        // Fields the Lua never came to look at do not matter.
        assert_eq!(creator(&InviteFacts { inviter: Field::Other, ..roster }), Ok("alice@example.com".into()));
        assert_eq!(creator(&InviteFacts { jid: Field::Other, ..facts() }), Ok("module".into()));
    }

    #[test]
    fn use_limits_are_whole_numbers_from_one() {
        let cases = [
            (MaxUses::Whole(1), Some(1)),
            (MaxUses::Whole(3), Some(3)),
            (MaxUses::Whole(0), None),
            (MaxUses::Whole(-2), None),
            (MaxUses::Whole(i64::MAX), Some(u32::MAX)),
            (MaxUses::NotWhole, None),
            (MaxUses::Absent, None),
        ];
        for (max_uses, expected) in cases {
            assert_eq!(InviteFacts { max_uses, ..facts() }.max_uses(), expected, "{max_uses:?}");
        }
    }

    /// An account invite restricted to `bob`, expiring at 100.
    fn bobs_invite() -> Record {
        Record {
            kind: InviteType::Register,
            jid: "bob@example.com".into(),
            token: "t".into(),
            allow_registration: true,
            uri: None,
            created_at: None,
            expires: 100,
            reusable: None,
            allow_reset: false,
            roster_subscription: None,
        }
    }

    #[test]
    fn records_reserve_their_name_while_pending() {
        let record = bobs_invite();
        assert_eq!(record.reserves(100), Some("bob"));
        assert_eq!(record.reserves(101), None);
        assert_eq!(Record { allow_reset: true, ..record.clone() }.reserves(0), None);
        assert_eq!(Record { kind: InviteType::Roster, ..record.clone() }.reserves(0), None);
        assert_eq!(Record { jid: "example.com".into(), ..record.clone() }.reserves(0), None);
        assert_eq!(record.facts().kind(), InviteKind::Account);
        assert_eq!(Record { allow_reset: true, ..record.clone() }.facts().kind(), InviteKind::Reset);
    }

    #[test]
    fn page_kinds_are_prosody_13s() {
        let kinds = [InviteKind::Account, InviteKind::Reset, InviteKind::Contact, InviteKind::AccountAndContact];
        assert_eq!(kinds.map(InviteKind::page_kind), ["account", "account", "contact-only", "account-and-contact"]);
    }

    #[test]
    fn name_keys_are_the_accounts_of_restricted_and_reset_invites() {
        let record = bobs_invite();
        assert_eq!(record.name_key(), Some("bob"));
        assert_eq!(Record { allow_reset: true, ..record.clone() }.name_key(), Some("bob"), "even once expired");
        assert_eq!(Record { jid: "example.com".into(), ..record.clone() }.name_key(), None);
        assert_eq!(Record { kind: InviteType::Roster, ..record }.name_key(), None, "found through the inviter's entry");
    }
}
