//! The rules of invite-based registration (XEP-0401, XEP-0445) and server-side pre-authenticated
//! roster subscription (XEP-0379), as `mod_invites_register` applies them.
//!
//! Everything here is pure or a small in-memory state machine the shim owns per host: which
//! streams get the invite stream features, what a pre-auth iq is answered with, when an address
//! is throttled, whether a registration may go ahead with the invite it presents, which stream
//! holds the single-use claim on a token. (What a `subscribe` with a token leads to is in
//! [`crate::subscription`].) The shim
//! reads storage and configuration, hooks the events and carries out the decisions.

use crate::claims::Claim;
use crate::claims::Settlement;
use crate::error::{Error, Result};
use crate::invite::ValidatedInvite;
use crate::jid::node_of;
use crate::plans::{Standing, UsePlan, use_plan};
use crate::record::InviteType;

/// Whether a stream gets the `urn:xmpp:invite` and `urn:xmpp:ibr-token:0` features: only
/// unauthenticated client streams, and only encrypted ones unless encryption is not required.
pub fn advertise_features(session_type: &str, secure: bool, require_encryption: bool) -> bool {
    session_type == "c2s_unauthed" && (secure || !require_encryption)
}

// ---------------------------------------------------------------------------------------------
// Registration

/// The invite a registration presents, as the shim found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedInvite<'a> {
    /// The token.
    pub token: &'a str,
    /// `type` of the validated invite.
    pub kind: InviteType,
    /// `jid` of the validated invite (`user@host` for restricted account invites).
    pub jid: Option<&'a str>,
    /// `username` of the validated invite (the restricted name, or the inviter for contacts).
    pub username: Option<&'a str>,
    /// `additional_data.allow_reset`: the account whose password this invite resets.
    pub allow_reset: Option<&'a str>,
    /// Reusable invites are not consumed and need no claim, unless they have a use limit.
    pub reusable: bool,
    /// What storage holds of it now; `None` when storage failed to tell (the registration must
    /// wait). Without a use limit a single-use invite allows one registration and a reusable one
    /// any number.
    pub standing: Option<Standing>,
}

impl PresentedInvite<'_> {
    /// How many more registrations may claim it at once: `None` for no limit.
    pub fn slots(&self) -> Option<u32> {
        let usage = self.standing.map(|standing| standing.usage).unwrap_or_default();
        match usage.limit {
            Some(max_uses) => Some(max_uses.saturating_sub(usage.uses)),
            None if self.reusable => None,
            None => Some(1),
        }
    }

    /// The only username an account invite may register: the node of its jid (stock's `get`
    /// never reported it, so the restriction was lost). Contact invites name the inviter there.
    pub fn restricted_to(&self) -> Option<&str> {
        match self.kind {
            InviteType::Register => self.jid.and_then(node_of).or(self.username),
            InviteType::Roster => None,
        }
    }
}

/// A `user-registering` event, reduced to what the rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registering<'a> {
    /// `registration_invite_only`.
    pub invite_only: bool,
    /// The (nodeprepped) username asked for.
    pub username: &'a str,
    /// Whether that account exists already.
    pub account_exists: bool,
    /// The invite presented, if any.
    pub invite: Option<PresentedInvite<'a>>,
    /// Whether a pending invite reserves `username` ([`Reservations`]).
    pub reservation: Reservation<'a>,
}

/// What the reservation index says of a username.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation<'a> {
    /// No pending invite reserves it.
    Free,
    /// The pending invite with this token reserves it.
    By(&'a str),
    /// Storage could not be read to tell.
    Unknown,
}

/// A registration that may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// `event.allow_reset`: the account whose password may be reset instead of creating one.
    pub allow_reset: Option<String>,
    /// The claim the registering party must take before going ahead (limited invites).
    pub claim: Option<Claim>,
}

/// Decides a registration. Expiry is deliberately not looked at: XEP-0445 checks it at pre-auth
/// only, and a stream that pre-authenticated in time may finish registering.
pub fn decide_registration(r: &Registering<'_>) -> Result<Allowed> {
    let Some(invite) = &r.invite else {
        if r.invite_only {
            return Err(Error::InviteOnly);
        }
        return match r.reservation {
            Reservation::Free => Ok(Allowed { allow_reset: None, claim: None }),
            Reservation::By(_) => Err(Error::UsernameReserved),
            Reservation::Unknown => Err(Error::Internal),
        };
    };
    let Some(standing) = invite.standing else {
        return Err(Error::Internal);
    };
    if !standing.stored || invite.slots() == Some(0) {
        return Err(Error::InviteGone);
    }
    let claim = invite.slots().map(|slots| Claim { token: invite.token.to_owned(), slots });
    if let Some(account) = invite.allow_reset {
        if r.username != account {
            return Err(Error::WrongUsername);
        }
        if !r.account_exists {
            return Err(Error::UnknownAccount);
        }
        return Ok(Allowed { allow_reset: Some(account.to_owned()), claim });
    }
    if invite.restricted_to().is_some_and(|name| name != r.username) {
        return Err(Error::WrongUsername);
    }
    match r.reservation {
        Reservation::By(token) if token != invite.token => return Err(Error::UsernameReserved),
        Reservation::Unknown => return Err(Error::Internal),
        _ => {}
    }
    if r.account_exists {
        return Err(Error::UsernameTaken);
    }
    Ok(Allowed { allow_reset: None, claim })
}

/// What a finished registration leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// What the use does to storage: the keys to delete (none while a limited invite has uses
    /// left, or for a reusable one). `None` when storage could not tell what is stored of the
    /// invite: the account exists all the same, so the use is owed, to be planned again from a
    /// fresh read when it is recorded.
    pub use_plan: Option<UsePlan>,
    /// Make the new account and this inviter mutually subscribed, and push the new contact to
    /// the inviter.
    pub befriend: Option<String>,
    /// Roles to store for the new account.
    pub roles: Vec<String>,
}

/// The account a finished registration made, and the inviter it may befriend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewAccount<'a> {
    /// The new account's username.
    pub username: &'a str,
    /// The validated invite's inviter (contact invites, or an account invite's creator who asked
    /// to become the new account's contact).
    pub inviter: Option<&'a str>,
    /// Whether that inviter's account is still there.
    pub inviter_exists: bool,
}

/// Plans `user-registered` (or a password reset) for an invite registration that settled as
/// `settlement`, with `standing` as read just before (`None`: storage could not tell, and the
/// account was made all the same, so the invite is taken as still stored and its use owed):
/// refused ([`Error::InviteInUse`], [`Error::InviteGone`]) when this registration may not redeem
/// it, else the use (consuming the invite when the use is its last), the inviter to befriend and
/// the roles to grant.
pub fn welcome(
    settlement: Settlement,
    invite: &ValidatedInvite,
    standing: Option<Standing>,
    account: NewAccount<'_>,
    roles: Vec<String>,
) -> Result<Welcome> {
    match settlement {
        Settlement::Claimed => {}
        Settlement::Unclaimed if standing.is_none_or(|standing| standing.stored) => {}
        Settlement::Unclaimed => return Err(Error::InviteGone),
        Settlement::HeldByOther => return Err(Error::InviteInUse),
    }
    let befriend = account.inviter.filter(|&inviter| account.inviter_exists && inviter != account.username).map(str::to_owned);
    Ok(Welcome { use_plan: standing.map(|standing| use_plan(invite, standing.usage, true)), befriend, roles })
}

// ---------------------------------------------------------------------------------------------
// `ibr=y`

/// Whether invitees can register on the host, so a contact invite may promise `ibr=y`
/// (XEP-0401: MUST be omitted otherwise): `mod_invites_register` runs there and some way to
/// register is loaded (in-band registration, or the invite registration web page).
pub fn registration_possible(invites_register_loaded: bool, ibr_loaded: bool, web_loaded: bool) -> bool {
    invites_register_loaded && (ibr_loaded || web_loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invite::testing::{HOST, request, stored};
    use crate::invite::{Redemption, create, validate};
    use crate::plans::Usage;

    const T: &str = "Xo3gdOvANs77aUhUX40RFxTZ";
    const U: &str = "Ux3gdOvANs77aUhUX40RFxTZ";

    #[test]
    fn features_only_for_unauthenticated_client_streams() {
        let cases = [
            ("c2s_unauthed", true, true, true),
            ("c2s_unauthed", false, true, false),
            ("c2s_unauthed", false, false, true),
            ("c2s_unauthed", true, false, true),
            ("c2s", true, true, false),
            ("c2s", false, false, false),
            ("s2sin_unauthed", true, false, false),
        ];
        for (kind, secure, required, expected) in cases {
            assert_eq!(advertise_features(kind, secure, required), expected, "{kind} secure={secure} required={required}");
        }
    }

    fn invite(kind: InviteType, jid: &'static str) -> PresentedInvite<'static> {
        PresentedInvite {
            token: T,
            kind,
            jid: Some(jid),
            username: node_of(jid),
            allow_reset: None,
            reusable: false,
            standing: Some(STORED),
        }
    }

    const STORED: Standing = Standing { stored: true, usage: Usage { limit: None, uses: 0 } };

    fn registering(username: &'static str, invite: Option<PresentedInvite<'static>>) -> Registering<'static> {
        Registering { invite_only: true, username, account_exists: false, invite, reservation: Reservation::Free }
    }

    fn claim() -> Option<Claim> {
        Some(Claim { token: T.to_owned(), slots: 1 })
    }

    #[test]
    fn registration_rules() {
        let open = invite(InviteType::Register, "example.com");
        let for_bob = invite(InviteType::Register, "bob@example.com");
        let contact = invite(InviteType::Roster, "alice@example.com");
        let reset = PresentedInvite { allow_reset: Some("carol"), ..invite(InviteType::Register, "carol@example.com") };
        let group = PresentedInvite { reusable: true, ..open.clone() };
        let gone = PresentedInvite { standing: Some(Standing { stored: false, ..STORED }), ..open.clone() };
        let unreadable = PresentedInvite { standing: None, ..open.clone() };
        let ok = |claim: Option<Claim>| Ok(Allowed { allow_reset: None, claim });

        let cases: Vec<(&str, Registering<'static>, Result<Allowed>)> = vec![
            ("invite-only, no invite", registering("mallory", None), Err(Error::InviteOnly)),
            ("open, no invite", Registering { invite_only: false, ..registering("mallory", None) }, ok(None)),
            (
                "open, no invite, reserved name",
                Registering { invite_only: false, reservation: Reservation::By(U), ..registering("bob", None) },
                Err(Error::UsernameReserved),
            ),
            (
                "open, no invite, reservations unreadable",
                Registering { invite_only: false, reservation: Reservation::Unknown, ..registering("bob", None) },
                Err(Error::Internal),
            ),
            (
                "invite, reservations unreadable",
                Registering { reservation: Reservation::Unknown, ..registering("bob", Some(open.clone())) },
                Err(Error::Internal),
            ),
            ("open invite, any name", registering("mallory", Some(open.clone())), ok(claim())),
            (
                "open invite, invite-only off",
                Registering { invite_only: false, ..registering("x", Some(open.clone())) },
                ok(claim()),
            ),
            ("restricted invite, its name", registering("bob", Some(for_bob.clone())), ok(claim())),
            ("restricted invite, other name (B4)", registering("mallory", Some(for_bob.clone())), Err(Error::WrongUsername)),
            (
                "restricted invite reserves its own name",
                Registering { reservation: Reservation::By(T), ..registering("bob", Some(for_bob.clone())) },
                ok(claim()),
            ),
            (
                "another invite cannot take a reserved name",
                Registering { reservation: Reservation::By(U), ..registering("bob", Some(open.clone())) },
                Err(Error::UsernameReserved),
            ),
            (
                "restricted invite, account taken meanwhile",
                Registering { account_exists: true, ..registering("bob", Some(for_bob.clone())) },
                Err(Error::UsernameTaken),
            ),
            ("contact invite registers any name", registering("dave", Some(contact.clone())), ok(claim())),
            (
                "reset invite resets its account",
                Registering { account_exists: true, ..registering("carol", Some(reset.clone())) },
                Ok(Allowed { allow_reset: Some("carol".into()), claim: claim() }),
            ),
            ("reset invite never creates (B3)", registering("mallory", Some(reset.clone())), Err(Error::WrongUsername)),
            (
                "reset invite for another existing account",
                Registering { account_exists: true, ..registering("alice", Some(reset.clone())) },
                Err(Error::WrongUsername),
            ),
            ("reset invite, its account was deleted", registering("carol", Some(reset.clone())), Err(Error::UnknownAccount)),
            ("used since pre-auth (B5)", registering("x", Some(gone.clone())), Err(Error::InviteGone)),
            (
                "used since pre-auth, open host",
                Registering { invite_only: false, ..registering("x", Some(gone)) },
                Err(Error::InviteGone),
            ),
            ("reusable invite needs no claim", registering("x", Some(group)), ok(None)),
            ("storage failed: wait, not gone", registering("x", Some(unreadable)), Err(Error::Internal)),
        ];
        for (name, request, expected) in cases {
            assert_eq!(decide_registration(&request), expected, "{name}");
        }
    }

    #[test]
    fn restriction_comes_from_the_jid() {
        // A validated invite from stock's get() has no username for account invites.
        let stockish = PresentedInvite { username: None, ..invite(InviteType::Register, "bob@example.com") };
        assert_eq!(stockish.restricted_to(), Some("bob"));
        let no_jid = PresentedInvite { jid: None, username: Some("bob"), ..invite(InviteType::Register, "x") };
        assert_eq!(no_jid.restricted_to(), Some("bob"));
        assert_eq!(invite(InviteType::Roster, "alice@example.com").restricted_to(), None);
        assert_eq!(invite(InviteType::Register, "example.com").restricted_to(), None);
    }

    #[test]
    fn welcome_plans() {
        let record = create(&request(InviteType::Roster, Some("alice"), true), T.into(), 0).unwrap();
        let contact = validate(Some(T), HOST, stored(&record), Redemption::Account, 1).unwrap();
        let roles = vec!["prosody:admin".to_owned()];
        let cases = [
            (Settlement::Claimed, Some("alice"), true, false, Ok(Some("alice"))),
            (Settlement::Claimed, None, true, false, Ok(None)),
            (Settlement::Claimed, Some("alice"), false, true, Ok(None)),
            (Settlement::Claimed, Some("dave"), true, true, Ok(None)),
            (Settlement::Unclaimed, Some("alice"), true, true, Ok(Some("alice"))),
            (Settlement::Unclaimed, Some("alice"), true, false, Err(Error::InviteGone)),
            (Settlement::HeldByOther, Some("alice"), true, true, Err(Error::InviteInUse)),
        ];
        for (settlement, inviter, inviter_exists, stored, expected) in cases {
            let account = NewAccount { username: "dave", inviter, inviter_exists };
            let plan = welcome(settlement, &contact, Some(Standing { stored, ..STORED }), account, roles.clone());
            assert_eq!(
                plan.as_ref().map(|w| w.befriend.as_deref()).map_err(Clone::clone),
                expected,
                "{settlement:?} {inviter:?}"
            );
            if let Ok(plan) = plan {
                let use_plan = plan.use_plan.unwrap();
                assert!(use_plan.consumed);
                assert_eq!(use_plan.keys.len(), 2, "both halves of a contact invite");
                assert_eq!(plan.roles, roles);
            }
        }
        // Storage could not tell: the account exists, so the use is owed (planned again later),
        // unclaimed or not; another registration's claim still refuses.
        let account = NewAccount { username: "dave", inviter: Some("alice"), inviter_exists: true };
        for settlement in [Settlement::Claimed, Settlement::Unclaimed] {
            let owed = welcome(settlement, &contact, None, account, vec![]).unwrap();
            assert_eq!((owed.use_plan, owed.befriend.as_deref()), (None, Some("alice")), "{settlement:?}");
        }
        assert_eq!(welcome(Settlement::HeldByOther, &contact, None, account, vec![]), Err(Error::InviteInUse));
        // A limited invite is consumed by its last use only.
        let account = create(&request(InviteType::Register, None, true), T.into(), 0).unwrap();
        let open = validate(Some(T), HOST, stored(&account), Redemption::Account, 1).unwrap();
        let consumed = |max_uses, uses| {
            let standing = Standing { stored: true, usage: Usage { limit: Some(max_uses), uses } };
            let account = NewAccount { username: "dave", inviter: None, inviter_exists: false };
            welcome(Settlement::Claimed, &open, Some(standing), account, vec![]).map(|w| w.use_plan.map(|p| p.consumed))
        };
        assert_eq!(consumed(3, 0), Ok(Some(false)));
        assert_eq!(consumed(3, 1), Ok(Some(false)));
        assert_eq!(consumed(3, 2), Ok(Some(true)));
        assert_eq!(consumed(1, 0), Ok(Some(true)));
    }

    #[test]
    fn limited_invites_register_until_used_up() {
        let limited = |max_uses, uses| PresentedInvite {
            standing: Some(Standing { stored: true, usage: Usage { limit: Some(max_uses), uses } }),
            ..invite(InviteType::Register, "example.com")
        };
        let allowed = decide_registration(&registering("x", Some(limited(3, 1)))).map(|a| a.claim);
        assert_eq!(allowed, Ok(Some(Claim { token: T.to_owned(), slots: 2 })));
        assert_eq!(decide_registration(&registering("x", Some(limited(3, 3)))), Err(Error::InviteGone));
        // A reusable (group) invite with a limit is limited too.
        let group = PresentedInvite { reusable: true, ..limited(5, 4) };
        assert_eq!(decide_registration(&registering("x", Some(group))).map(|a| a.claim.map(|c| c.slots)), Ok(Some(1)));
        let unlimited = PresentedInvite { reusable: true, ..invite(InviteType::Register, "example.com") };
        assert_eq!(decide_registration(&registering("x", Some(unlimited))).map(|a| a.claim), Ok(None));
    }

    #[test]
    fn ibr_needs_a_way_to_register() {
        let cases =
            [(true, true, false, true), (true, false, true, true), (true, false, false, false), (false, true, true, false)];
        for (ours, ibr, web, expected) in cases {
            assert_eq!(registration_possible(ours, ibr, web), expected, "{ours} {ibr} {web}");
        }
    }
}
