//! Group chats (XEP-0045 rooms) carried by invites: `additional_data.rooms`.
//!
//! An invite may name rooms of a local MUC service. When it is created, each room is checked
//! ([`check`]) with facts the shim gathers from the MUC component (is it a MUC service, does the
//! room exist, is it destroyed or temporary, what is the creator's affiliation). When it is used,
//! each room is handled on its own ([`plan`]): the account becomes a member unless it already has
//! an affiliation (never downgraded, never unbanned), gets a XEP-0402 bookmark and a XEP-0249
//! invitation ([`invitation_sender`], [`invitation_reason`]). When the account is deleted, only
//! the memberships this feature granted and that are still plain memberships are removed
//! ([`remove_on_delete`]).
//!
//! Nothing here talks to Prosody: the shim looks rooms up, sets affiliations, publishes and sends.

use std::fmt;

use crate::error::Error;
use crate::jid;

/// `invites_max_rooms` default: how many rooms one invite may carry.
pub const DEFAULT_MAX_ROOMS: usize = 10;

/// One room of an invite, normalised: a prepped bare room JID and whether clients should join it
/// automatically (the bookmark's `autojoin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEntry {
    /// The room's bare JID, prepped.
    pub jid: String,
    /// Whether clients join it on their own (the bookmark's `autojoin`).
    pub autojoin: bool,
}

/// One entry as the shim read it: the JID as given, the same JID after stringprep (`None` when
/// it is not a valid JID), and the `autojoin` flag if the entry had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInput {
    /// The JID as given.
    pub given: String,
    /// The same after stringprep; `None` when it is not a valid JID.
    pub prepped: Option<String>,
    /// The entry's `autojoin`, if it had one.
    pub autojoin: Option<bool>,
}

/// Why a room was refused, as the XMPP error condition a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The room does not exist, or was destroyed.
    NotFound,
    /// The creator may not invite people to it.
    NotAllowed,
    /// Not usable: not a room JID, not a local MUC service, temporary, too many rooms.
    BadRequest,
}

/// A refused room: which one and why, in words an operator or user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRefusal {
    /// The room as given (empty when the refusal is about the whole list).
    pub room: String,
    /// Why, as the condition a client sees.
    pub kind: RefusalKind,
    /// Why, in words an operator or user can act on.
    pub reason: String,
}

impl RoomRefusal {
    fn new(room: &str, kind: RefusalKind, reason: impl Into<String>) -> Self {
        Self { room: room.to_owned(), kind, reason: reason.into() }
    }
}

/// The refusal as the core's error, its text naming the room.
impl From<RoomRefusal> for Error {
    fn from(refusal: RoomRefusal) -> Self {
        let text = refusal.to_string();
        match refusal.kind {
            RefusalKind::NotFound => Self::RoomNotFound(text),
            RefusalKind::NotAllowed => Self::RoomNotAllowed(text),
            RefusalKind::BadRequest => Self::BadRequest(text),
        }
    }
}

/// What an invite's use records for a room refused (by [`check`]) when the invite is used.
pub fn redemption_outcome(refusal: &Error) -> &'static str {
    match refusal {
        Error::RoomNotFound(_) => "room-gone",
        Error::RoomNotAllowed(_) => "not-allowed",
        _ => "unsuitable",
    }
}

impl fmt::Display for RoomRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.room.is_empty() { f.write_str(&self.reason) } else { write!(f, "Group chat {}: {}", self.room, self.reason) }
    }
}

/// Normalises the rooms of an invite: every entry a valid bare JID with a node part (a room, not
/// a service), `autojoin` defaulting to true, duplicates dropped (the first wins), and at most
/// `max` rooms.
pub fn normalise(inputs: &[RoomInput], max: usize) -> Result<Vec<RoomEntry>, RoomRefusal> {
    let mut rooms: Vec<RoomEntry> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let given = input.given.trim();
        let Some(jid) = input.prepped.as_deref().filter(|jid| !jid.is_empty()) else {
            return Err(RoomRefusal::new(given, RefusalKind::BadRequest, "not a valid address"));
        };
        if jid.contains('/') {
            return Err(RoomRefusal::new(given, RefusalKind::BadRequest, "give the room's address without a nickname"));
        }
        match jid::split(jid) {
            jid::Parts { node: Some(node), domain, .. } if !node.is_empty() && !domain.is_empty() => {}
            _ => {
                return Err(RoomRefusal::new(
                    given,
                    RefusalKind::BadRequest,
                    "not the address of a group chat (expected name@service)",
                ));
            }
        }
        if rooms.iter().any(|room| room.jid == jid) {
            continue;
        }
        rooms.push(RoomEntry { jid: jid.to_owned(), autojoin: input.autojoin.unwrap_or(true) });
    }
    if rooms.len() > max {
        return Err(RoomRefusal::new(
            "",
            RefusalKind::BadRequest,
            format!("An invite may carry at most {max} group chats, not {}", rooms.len()),
        ));
    }
    Ok(rooms)
}

/// A XEP-0045 affiliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affiliation {
    /// `owner`.
    Owner,
    /// `admin`.
    Admin,
    /// `member`.
    Member,
    /// `outcast` (banned).
    Outcast,
}

impl Affiliation {
    /// Reads Prosody's affiliation names; anything else (`nil`, "none") is no affiliation.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            "outcast" => Some(Self::Outcast),
            _ => None,
        }
    }

    /// Prosody's name of the affiliation.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Outcast => "outcast",
        }
    }
}

/// What is known about a room when an invite naming it is created or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomFacts {
    /// The room's host is a MUC component of this server.
    pub muc_service: bool,
    /// Whether the room itself could be looked at. False from `prosodyctl`, which runs outside
    /// the server and sees no rooms: then only the service is checked.
    pub checked: bool,
    /// The room exists.
    pub exists: bool,
    /// A tombstone of a destroyed room.
    pub destroyed: bool,
    /// The room is persistent.
    pub persistent: bool,
    /// Only members may enter.
    pub members_only: bool,
    /// The room lets members invite (`allow_member_invites`).
    pub allow_member_invites: bool,
}

/// Who names the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    /// An admin of the host, the admin shell, the command line or another module: any room.
    Privileged,
    /// An ordinary user, with their affiliation in the room.
    User(Option<Affiliation>),
}

/// Whether the room was looked at or only its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The room itself was looked at.
    Room,
    /// Only its service was (from `prosodyctl`, which sees no rooms).
    ServiceOnly,
}

/// Whether someone with `affiliation` may invite people to a room under XEP-0045's rules as
/// Prosody applies them (`muc/members_only.lib.lua`): owners and admins always; in members-only
/// rooms members only when member invites are allowed; in open rooms anyone not banned.
pub fn may_invite(affiliation: Option<Affiliation>, members_only: bool, allow_member_invites: bool) -> bool {
    match affiliation {
        Some(Affiliation::Owner | Affiliation::Admin) => true,
        Some(Affiliation::Member) => !members_only || allow_member_invites,
        Some(Affiliation::Outcast) => false,
        None => !members_only,
    }
}

/// Decides whether `room` may go into an invite (or, when the invite is used, may still be
/// applied for its creator).
pub fn check(room: &str, facts: &RoomFacts, requester: Requester) -> Result<Checked, RoomRefusal> {
    if !facts.muc_service {
        return Err(RoomRefusal::new(room, RefusalKind::BadRequest, "not on a group chat service of this server"));
    }
    if !facts.checked {
        return match requester {
            Requester::Privileged => Ok(Checked::ServiceOnly),
            Requester::User(_) => {
                Err(RoomRefusal::new(room, RefusalKind::NotAllowed, "your rights in this group chat cannot be checked"))
            }
        };
    }
    if facts.destroyed {
        return Err(RoomRefusal::new(room, RefusalKind::NotFound, "the group chat was destroyed"));
    }
    if !facts.exists {
        return Err(RoomRefusal::new(room, RefusalKind::NotFound, "no such group chat"));
    }
    if !facts.persistent {
        return Err(RoomRefusal::new(
            room,
            RefusalKind::BadRequest,
            "the group chat is temporary (its memberships would not last)",
        ));
    }
    if let Requester::User(affiliation) = requester
        && !may_invite(affiliation, facts.members_only, facts.allow_member_invites)
    {
        return Err(RoomRefusal::new(room, RefusalKind::NotAllowed, "you may not invite people to this group chat"));
    }
    Ok(Checked::Room)
}

/// What to do with the affiliation of the account that used an invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No affiliation yet: make it a member.
    Grant,
    /// Already member, admin or owner: leave it (never downgrade).
    Keep(Affiliation),
    /// Banned: leave it banned, and send neither bookmark nor invitation.
    Banned,
}

impl Step {
    /// The outcome recorded and reported in `invite-rooms-applied` when nothing fails.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Grant => "granted",
            Self::Keep(Affiliation::Owner) => "kept-owner",
            Self::Keep(Affiliation::Admin) => "kept-admin",
            Self::Keep(_) => "kept-member",
            Self::Banned => "banned",
        }
    }

    /// Whether the account gets the bookmark and the invitation.
    pub fn welcomes(self) -> bool {
        !matches!(self, Self::Banned)
    }
}

/// Plans the affiliation step for an account whose current affiliation is `current`.
pub fn plan(current: Option<Affiliation>) -> Step {
    match current {
        None => Step::Grant,
        Some(Affiliation::Outcast) => Step::Banned,
        Some(affiliation) => Step::Keep(affiliation),
    }
}

/// Whether a membership this feature granted is removed when the account is deleted: only while
/// it is still exactly `member` (an owner or admin since, or a ban, is someone else's decision).
pub fn remove_on_delete(current: Option<Affiliation>) -> bool {
    current == Some(Affiliation::Member)
}

/// `invites_room_invitation`: who sends the XEP-0249 invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvitationMode {
    /// The inviter, when the invite has one and the subscription is mutual; else the room.
    #[default]
    Inviter,
    /// Always the room.
    Room,
    /// No invitation (the bookmark alone).
    None,
}

impl InvitationMode {
    /// Reads the option (`nil` is the default).
    pub fn parse(value: Option<&str>) -> Result<Self, Error> {
        match value {
            None | Some("inviter") => Ok(Self::Inviter),
            Some("room") => Ok(Self::Room),
            Some("none") => Ok(Self::None),
            Some(other) => Err(Error::BadRequest(format!(
                "invites_room_invitation: expected \"inviter\", \"room\" or \"none\", not {other:?}"
            ))),
        }
    }
}

/// The sender of the XEP-0249 invitation to `room`, or none. `inviter` is the inviter's bare JID
/// when the invite has one and the account and the inviter are mutual contacts by now.
pub fn invitation_sender(mode: InvitationMode, inviter: Option<&str>, room: &str) -> Option<String> {
    match mode {
        InvitationMode::Inviter => Some(inviter.filter(|jid| !jid.is_empty()).unwrap_or(room).to_owned()),
        InvitationMode::Room => Some(room.to_owned()),
        InvitationMode::None => None,
    }
}

/// The invitation's `reason`: who invited and to what, by the room's name when it has one.
pub fn invitation_reason(inviter: Option<&str>, room_name: Option<&str>, room: &str) -> String {
    let name = room_name.map(str::trim).filter(|name| !name.is_empty()).unwrap_or(room);
    match inviter.filter(|jid| !jid.is_empty()) {
        Some(inviter) => format!("{inviter} invited you to {name}"),
        None => format!("You were invited to {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOUNGE: &str = "lounge@conference.example.com";

    fn input(given: &str, prepped: Option<&str>, autojoin: Option<bool>) -> RoomInput {
        RoomInput { given: given.to_owned(), prepped: prepped.map(str::to_owned), autojoin }
    }

    fn plain(jid: &str) -> RoomInput {
        input(jid, Some(jid), None)
    }

    fn facts() -> RoomFacts {
        RoomFacts { muc_service: true, checked: true, exists: true, persistent: true, ..RoomFacts::default() }
    }

    #[test]
    fn normalises_strings_and_tables() {
        let rooms =
            normalise(&[input("Lounge@Conference.example.com", Some(LOUNGE), None), input("b@c", Some("b@c"), Some(false))], 10);
        assert_eq!(
            rooms,
            Ok(vec![RoomEntry { jid: LOUNGE.to_owned(), autojoin: true }, RoomEntry { jid: "b@c".to_owned(), autojoin: false }])
        );
    }

    #[test]
    fn drops_duplicates_after_prep() {
        let rooms = normalise(&[plain(LOUNGE), input("LOUNGE@conference.example.com", Some(LOUNGE), Some(false))], 1);
        assert_eq!(rooms, Ok(vec![RoomEntry { jid: LOUNGE.to_owned(), autojoin: true }]));
    }

    #[test]
    fn refuses_what_is_not_a_room() {
        for (given, prepped, why) in [
            ("bad@@x", None, "not a valid address"),
            ("", Some(""), "not a valid address"),
            ("conference.example.com", Some("conference.example.com"), "expected name@service"),
            ("lounge@conference.example.com/nick", Some("lounge@conference.example.com/nick"), "without a nickname"),
        ] {
            let refusal = normalise(&[input(given, prepped, None)], 10).unwrap_err();
            assert_eq!(refusal.kind, RefusalKind::BadRequest, "{given}");
            assert!(refusal.reason.contains(why), "{given}: {}", refusal.reason);
            assert_eq!(refusal.room, given);
        }
    }

    #[test]
    fn counts_against_the_limit() {
        let three: Vec<RoomInput> = (0..3).map(|i| plain(&format!("r{i}@muc"))).collect();
        assert!(normalise(&three, 3).is_ok());
        let refusal = normalise(&three, 2).unwrap_err();
        assert_eq!(refusal.kind, RefusalKind::BadRequest);
        assert_eq!(refusal.to_string(), "An invite may carry at most 2 group chats, not 3");
        assert_eq!(normalise(&[], 0), Ok(vec![]));
    }

    #[test]
    fn member_invite_rights_follow_xep0045() {
        use Affiliation::*;
        let cases = [
            (Some(Owner), true, false, true),
            (Some(Admin), true, false, true),
            (Some(Member), true, false, false),
            (Some(Member), true, true, true),
            (Some(Member), false, false, true),
            (None, true, true, false),
            (None, false, false, true),
            (Some(Outcast), false, true, false),
        ];
        for (affiliation, members_only, allow, expected) in cases {
            assert_eq!(may_invite(affiliation, members_only, allow), expected, "{affiliation:?} {members_only} {allow}");
        }
    }

    #[test]
    fn checks_the_room_and_names_it() {
        let ok = facts();
        assert_eq!(check(LOUNGE, &ok, Requester::Privileged), Ok(Checked::Room));
        let cases = [
            (RoomFacts { muc_service: false, ..ok }, RefusalKind::BadRequest, "not on a group chat service"),
            (RoomFacts { exists: false, ..ok }, RefusalKind::NotFound, "no such group chat"),
            (RoomFacts { destroyed: true, ..ok }, RefusalKind::NotFound, "destroyed"),
            (RoomFacts { persistent: false, ..ok }, RefusalKind::BadRequest, "temporary"),
        ];
        for (facts, kind, why) in cases {
            let refusal = check(LOUNGE, &facts, Requester::Privileged).unwrap_err();
            assert_eq!(refusal.kind, kind, "{why}");
            assert!(refusal.to_string().starts_with(&format!("Group chat {LOUNGE}: ")), "{refusal}");
            assert!(refusal.reason.contains(why), "{}", refusal.reason);
        }
    }

    #[test]
    fn users_need_invite_rights() {
        let members_only = RoomFacts { members_only: true, ..facts() };
        let member = Requester::User(Some(Affiliation::Member));
        let refusal = check(LOUNGE, &members_only, member).unwrap_err();
        assert_eq!(refusal.kind, RefusalKind::NotAllowed);
        assert_eq!(redemption_outcome(&Error::from(refusal.clone())), "not-allowed");
        let allowing = RoomFacts { allow_member_invites: true, ..members_only };
        assert_eq!(check(LOUNGE, &allowing, member), Ok(Checked::Room));
        assert_eq!(check(LOUNGE, &members_only, Requester::User(Some(Affiliation::Owner))), Ok(Checked::Room));
        assert_eq!(check(LOUNGE, &facts(), Requester::User(None)), Ok(Checked::Room));
        assert!(check(LOUNGE, &facts(), Requester::User(Some(Affiliation::Outcast))).is_err());
        // Existence comes first: a user learns the room is gone, not that they lack rights.
        let gone = RoomFacts { exists: false, ..members_only };
        assert_eq!(redemption_outcome(&check(LOUNGE, &gone, Requester::User(None)).unwrap_err().into()), "room-gone");
    }

    #[test]
    fn offline_checks_only_the_service() {
        let offline = RoomFacts { muc_service: true, ..RoomFacts::default() };
        assert_eq!(check(LOUNGE, &offline, Requester::Privileged), Ok(Checked::ServiceOnly));
        assert_eq!(check(LOUNGE, &offline, Requester::User(None)).unwrap_err().kind, RefusalKind::NotAllowed);
        let no_service = RoomFacts::default();
        assert_eq!(check(LOUNGE, &no_service, Requester::Privileged).unwrap_err().kind, RefusalKind::BadRequest);
    }

    #[test]
    fn never_downgrades_or_unbans() {
        assert_eq!(plan(None), Step::Grant);
        assert_eq!(plan(Some(Affiliation::Owner)), Step::Keep(Affiliation::Owner));
        assert_eq!(plan(Some(Affiliation::Admin)).outcome(), "kept-admin");
        assert_eq!(plan(Some(Affiliation::Member)).outcome(), "kept-member");
        assert_eq!(plan(Some(Affiliation::Outcast)), Step::Banned);
        assert!(!Step::Banned.welcomes());
        assert!(Step::Grant.welcomes() && Step::Keep(Affiliation::Owner).welcomes());
    }

    #[test]
    fn deletion_removes_plain_memberships_only() {
        assert!(remove_on_delete(Some(Affiliation::Member)));
        for other in [None, Some(Affiliation::Owner), Some(Affiliation::Admin), Some(Affiliation::Outcast)] {
            assert!(!remove_on_delete(other), "{other:?}");
        }
    }

    #[test]
    fn affiliation_names() {
        for name in ["owner", "admin", "member", "outcast"] {
            assert_eq!(Affiliation::parse(name).map(Affiliation::as_str), Some(name));
        }
        assert_eq!(Affiliation::parse("none"), None);
    }

    #[test]
    fn invitation_sender_and_reason() {
        let alice = Some("alice@example.com");
        assert_eq!(InvitationMode::parse(None), Ok(InvitationMode::Inviter));
        assert_eq!(InvitationMode::parse(Some("room")), Ok(InvitationMode::Room));
        assert_eq!(InvitationMode::parse(Some("none")), Ok(InvitationMode::None));
        assert!(InvitationMode::parse(Some("bot")).unwrap_err().to_string().contains("\"bot\""));
        assert_eq!(invitation_sender(InvitationMode::Inviter, alice, LOUNGE).as_deref(), alice);
        assert_eq!(invitation_sender(InvitationMode::Inviter, None, LOUNGE).as_deref(), Some(LOUNGE));
        assert_eq!(invitation_sender(InvitationMode::Room, alice, LOUNGE).as_deref(), Some(LOUNGE));
        assert_eq!(invitation_sender(InvitationMode::None, alice, LOUNGE), None);
        assert_eq!(invitation_reason(alice, Some("Lounge"), LOUNGE), "alice@example.com invited you to Lounge");
        assert_eq!(invitation_reason(None, Some(" "), LOUNGE), format!("You were invited to {LOUNGE}"));
    }
}
