//! The invite rules: creating records ([`Record`]) and validating tokens. Which storage keys a
//! redemption, a revocation, a purge or an account deletion removes is in [`crate::plans`].
//!
//! Storage layout (kept identical to Prosody's stock `mod_invites`, so operators can switch
//! back and forth): store `invite_token`, a map. Host-level key `(nil, token)` holds the whole
//! record for every invite that allows registration; user-level key `(inviter, token)` holds
//! the expiry as a bare number for every contact (`roster`) invite.

use crate::jid::{check_username, local_node, node_of};
use crate::record::{InviteType, MaxUses, Record, is_current};
use crate::token::{check_token, redact};
use crate::uri::invite_uri;
use crate::{Error, Result};
use tracing::{debug, warn};

/// Default lifetime of an invite: one week, as in Prosody.
pub const DEFAULT_TTL: u64 = 7 * 86400;

/// Default lifetime of a password-reset invite: one day, as in Prosody.
pub const DEFAULT_RESET_TTL: u64 = 86400;

/// What the caller asks for when creating an invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRequest<'a> {
    /// Account or contact invite.
    pub kind: InviteType,
    /// The virtual host the invite belongs to.
    pub host: &'a str,
    /// For [`InviteType::Register`], the only username it may register (`None`: any name).
    /// For [`InviteType::Roster`], the inviter; required.
    pub username: Option<&'a str>,
    /// Whether the token may register an account (always true for account invites).
    pub allow_registration: bool,
    /// Lifetime in seconds.
    pub ttl: u64,
    /// `Some(true)` for invites that may be used many times until they expire. Stock stores
    /// the field only for group invites, so `None` keeps records byte-for-byte alike.
    pub reusable: Option<bool>,
    /// `additional_data.max_uses` as given.
    pub max_uses: MaxUses,
    /// Whether `additional_data` names an account to reset (`allow_reset`).
    pub reset: bool,
    /// Whether `additional_data` carries group chats (`rooms`, checked by the caller).
    pub rooms: bool,
}

/// How a token is being redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption<'a> {
    /// Account registration (`get(token)`): the host-level record decides.
    Account,
    /// XEP-0379 (`get(token, username)`): the user-level entry of `username` decides.
    Contact {
        /// The local user the subscription request is addressed to.
        username: &'a str,
        /// That user's user-level entry for the token, if any.
        user_expiry: Option<i64>,
    },
}

/// A token that passed validation; what `get()` hands to consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedInvite {
    /// The token.
    pub token: String,
    /// Account or contact invite.
    pub kind: InviteType,
    /// For contact invites, the inviter; for restricted account invites, the only username
    /// that may be registered with it (stock left this empty, so the restriction was lost).
    pub username: Option<String>,
    /// The inviter, set on the registration path of contact invites (stock semantics).
    pub inviter: Option<String>,
    /// The record's `jid` (stock never exposed it although consumers read it).
    pub jid: String,
    /// The `xmpp:` URI.
    pub uri: String,
    /// Expiry, Unix seconds.
    pub expires: i64,
    /// Creation time, when known.
    pub created_at: Option<i64>,
    /// Reusable invites are not consumed by use.
    pub reusable: bool,
    /// Whether a host-level record exists (so using it must delete one).
    pub host_level: bool,
}

/// What must still exist for a validated invite to be usable, because a deletion made outside
/// the server (`prosodyctl deluser` on 0.12 tells it nothing) must still end it: the account of
/// its inviter and, for a contact invite used to register, that inviter's user-level entry
/// (which deleting the account purges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviterChecks<'a> {
    /// The account that must exist.
    pub account: Option<&'a str>,
    /// The user whose user-level entry for the token must exist.
    pub entry_of: Option<&'a str>,
}

impl ValidatedInvite {
    /// The checks [`InviterChecks`] names for this invite: on the XEP-0379 path the contact it
    /// befriends, else the inviter (a contact invite's owner, or an account invite's creator who
    /// asked to become the new account's contact).
    pub fn inviter_checks(&self, redemption_is_contact: bool) -> InviterChecks<'_> {
        let account = if redemption_is_contact { self.username.as_deref() } else { self.inviter.as_deref() };
        let entry_of = account.filter(|_| self.kind == InviteType::Roster && !redemption_is_contact);
        InviterChecks { account, entry_of }
    }
}

/// 9999-12-31T23:59:59Z: the latest expiry a record gets.
pub const LAST_EXPIRY: i64 = 253_402_300_799;

/// Builds a new record. `token` comes from the caller's CSPRNG ([`crate::token::encode_token`]).
pub fn create(request: &InviteRequest<'_>, token: String, now: i64) -> Result<Record> {
    let jid = match (request.kind, request.username) {
        (InviteType::Register, None) => request.host.to_owned(),
        (_, Some(username)) => format!("{}@{}", check_username(username)?, request.host),
        (InviteType::Roster, None) => return Err(Error::InvalidUsername),
    };
    let allow_registration = request.kind == InviteType::Register || request.allow_registration;
    if request.reset && request.rooms {
        return Err(Error::BadRequest("A password reset invite cannot carry group chats".to_owned()));
    }
    // A limit counts registrations: only invites that allow one may have it.
    let limit_ok = match request.max_uses {
        MaxUses::Absent => true,
        MaxUses::Whole(n) => n >= 1 && allow_registration,
        MaxUses::NotWhole => false,
    };
    if !limit_ok {
        return Err(Error::BadRequest("max_uses must be a whole number from 1, on invites that allow registration".to_owned()));
    }
    // Lifetimes past the last second XEP-0082 can write ("never" among them) end there.
    let expires =
        i64::try_from(request.ttl).ok().and_then(|ttl| now.checked_add(ttl)).map_or(LAST_EXPIRY, |e| e.min(LAST_EXPIRY));
    let ibr = request.kind == InviteType::Roster && allow_registration;
    let uri = invite_uri(&jid, request.kind.as_str(), &token, ibr);
    Ok(Record {
        kind: request.kind,
        jid,
        token,
        allow_registration,
        uri: Some(uri),
        created_at: Some(now),
        expires,
        reusable: request.reusable,
        // The caller adds additional_data (a reset invite's allow_reset among it) after creation.
        allow_reset: false,
        roster_subscription: None,
    })
}

/// Validates a token for one redemption path, from what the caller read out of storage: the
/// host-level record, `None` when there is none, or the error reading it gave. A record that
/// cannot be read (junk in a field the rules need) makes the token invalid; the reason is logged.
///
/// The caller should run [`check_token`] first and skip the storage reads for junk.
pub fn validate(
    token: Option<&str>,
    host: &str,
    record: Result<Option<Record>>,
    redemption: Redemption<'_>,
    now: i64,
) -> Result<ValidatedInvite> {
    let record = record.map_err(|e| {
        warn!("ignoring invite {:?}: {e}", token.map(redact));
        Error::TokenInvalid
    })?;
    let token = check_token(token.ok_or(Error::NoToken)?)?;
    let (kind, username, inviter, jid, expires) = match redemption {
        Redemption::Account => {
            let record = record.as_ref().ok_or(Error::TokenInvalid).inspect_err(|_| debug!("unknown token {}", redact(token)))?;
            let node = node_of(&record.jid).map(str::to_owned);
            let inviter = match record.kind {
                InviteType::Roster => node.clone(),
                // Reported as the inviter so registration makes them mutual contacts, as it does
                // for contact invites; only a creator on this host can be subscribed to.
                InviteType::Register => {
                    record.roster_subscription.as_deref().and_then(|creator| local_node(creator, host).map(str::to_owned))
                }
            };
            (record.kind, node, inviter, record.jid.clone(), record.expires)
        }
        Redemption::Contact { username, user_expiry } => {
            let expires = user_expiry
                .ok_or(Error::TokenInvalid)
                .inspect_err(|_| debug!("unknown contact token {} for {username}", redact(token)))?;
            let kind = record.as_ref().map_or(InviteType::Roster, |r| r.kind);
            (kind, Some(username.to_owned()), None, format!("{username}@{host}"), expires)
        }
    };
    if !is_current(expires, now) {
        debug!("expired token {}", redact(token));
        return Err(Error::TokenExpired);
    }
    Ok(ValidatedInvite {
        token: token.to_owned(),
        kind,
        username,
        inviter,
        uri: match record.as_ref().and_then(|r| r.uri.clone()) {
            Some(uri) => uri,
            None => invite_uri(&jid, kind.as_str(), token, false),
        },
        jid,
        expires,
        created_at: record.as_ref().and_then(|r| r.created_at),
        reusable: record.as_ref().is_some_and(Record::is_reusable),
        host_level: record.is_some(),
    })
}

/// What the tests of invites and plans build their records from.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) const HOST: &str = "example.com";
    pub(crate) const T: &str = "Xo3gdOvANs77aUhUX40RFxTZ";

    pub(crate) fn request(kind: InviteType, username: Option<&'static str>, allow_registration: bool) -> InviteRequest<'static> {
        InviteRequest {
            kind,
            host: HOST,
            username,
            allow_registration,
            ttl: 3600,
            reusable: None,
            max_uses: MaxUses::Absent,
            reset: false,
            rooms: false,
        }
    }

    /// A record as read back from storage.
    pub(crate) fn stored(record: &Record) -> Result<Option<Record>> {
        Ok(Some(record.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::plans::{StoreKey, Usage, revoke_plan, use_plan};

    #[test]
    fn a_contact_invite_needs_its_inviter_and_the_inviters_entry() {
        let record = create(&request(InviteType::Roster, Some("alice"), true), T.into(), 0).unwrap();
        let registering = validate(Some(T), HOST, stored(&record), Redemption::Account, 1).unwrap();
        assert_eq!(registering.inviter_checks(false), InviterChecks { account: Some("alice"), entry_of: Some("alice") });
        let subscribing =
            validate(Some(T), HOST, stored(&record), Redemption::Contact { username: "alice", user_expiry: Some(9) }, 1).unwrap();
        assert_eq!(subscribing.inviter_checks(true), InviterChecks { account: Some("alice"), entry_of: None });
        let account = create(&request(InviteType::Register, None, true), T.into(), 0).unwrap();
        let plain = validate(Some(T), HOST, stored(&account), Redemption::Account, 1).unwrap();
        assert_eq!(plain.inviter_checks(false), InviterChecks { account: None, entry_of: None });
    }

    #[test]
    fn creates_records_like_stock() {
        let cases = [
            (request(InviteType::Register, None, true), "example.com", "xmpp:example.com?register;preauth=T", true),
            (
                request(InviteType::Register, Some("bob"), false),
                "bob@example.com",
                "xmpp:bob@example.com?register;preauth=T",
                true,
            ),
            (
                request(InviteType::Roster, Some("alice"), false),
                "alice@example.com",
                "xmpp:alice@example.com?roster;preauth=T",
                false,
            ),
            (
                request(InviteType::Roster, Some("alice"), true),
                "alice@example.com",
                "xmpp:alice@example.com?roster;preauth=T;ibr=y",
                true,
            ),
        ];
        for (req, jid, uri, host_level) in cases {
            let record = create(&req, "T".into(), 1000).unwrap();
            assert_eq!(record.jid, jid);
            assert_eq!(record.uri.as_deref(), Some(uri));
            assert_eq!(record.created_at, Some(1000));
            assert_eq!(record.expires, 4600);
            assert_eq!(record.stored_at_host_level(), host_level, "{jid}");
        }
    }

    #[test]
    fn contact_invites_need_an_inviter_and_names_must_be_localparts() {
        assert_eq!(create(&request(InviteType::Roster, None, false), T.into(), 0), Err(Error::InvalidUsername));
        for bad in ["", "a@b", "a/b", "a b"] {
            let req = InviteRequest { username: Some(bad), ..request(InviteType::Register, None, true) };
            assert_eq!(create(&req, T.into(), 0), Err(Error::InvalidUsername), "{bad:?}");
        }
        let never = InviteRequest { ttl: u64::MAX, ..request(InviteType::Register, None, true) };
        assert_eq!(create(&never, T.into(), 1000).map(|r| r.expires), Ok(LAST_EXPIRY));
    }

    #[test]
    fn use_limits_and_group_chats_where_they_make_sense() {
        let limited = |kind, allow_registration, max_uses| {
            let req = InviteRequest { max_uses, ..request(kind, Some("alice"), allow_registration) };
            create(&req, T.into(), 0).map(|_| ())
        };
        let refused = Err(Error::BadRequest("max_uses must be a whole number from 1, on invites that allow registration".into()));
        assert_eq!(limited(InviteType::Register, false, MaxUses::Whole(3)), Ok(()), "account invites always register");
        assert_eq!(limited(InviteType::Roster, true, MaxUses::Whole(1)), Ok(()));
        assert_eq!(limited(InviteType::Roster, false, MaxUses::Whole(1)), refused, "contact-only");
        assert_eq!(limited(InviteType::Register, true, MaxUses::Whole(0)), refused);
        assert_eq!(limited(InviteType::Register, true, MaxUses::NotWhole), refused);
        let reset_with_rooms = InviteRequest { reset: true, rooms: true, ..request(InviteType::Register, Some("bob"), true) };
        assert_eq!(
            create(&reset_with_rooms, T.into(), 0).map(|_| ()),
            Err(Error::BadRequest("A password reset invite cannot carry group chats".into()))
        );
        let reset = InviteRequest { rooms: false, ..reset_with_rooms };
        assert!(create(&reset, T.into(), 0).is_ok());
    }

    #[test]
    fn expiry_is_inclusive_at_the_expires_second() {
        let record = create(&request(InviteType::Register, None, true), T.into(), 1000).unwrap();
        let cases = [(1000, true), (4599, true), (4600, true), (4601, false)];
        for (now, ok) in cases {
            let result = validate(Some(T), HOST, stored(&record), Redemption::Account, now);
            assert_eq!(result.is_ok(), ok, "now={now}");
            if !ok {
                assert_eq!(result, Err(Error::TokenExpired));
            }
        }
    }

    #[test]
    fn validation_errors() {
        let record = create(&request(InviteType::Register, None, true), T.into(), 1000).unwrap();
        assert_eq!(validate(None, HOST, stored(&record), Redemption::Account, 0), Err(Error::NoToken));
        assert_eq!(validate(Some(""), HOST, stored(&record), Redemption::Account, 0), Err(Error::TokenInvalid));
        assert_eq!(validate(Some("a=b&c"), HOST, stored(&record), Redemption::Account, 0), Err(Error::TokenInvalid));
        assert_eq!(validate(Some(T), HOST, Ok(None), Redemption::Account, 0), Err(Error::TokenInvalid));
        // An account token cannot be used as a contact token.
        let contact = Redemption::Contact { username: "alice", user_expiry: None };
        assert_eq!(validate(Some(T), HOST, stored(&record), contact, 0), Err(Error::TokenInvalid));
    }

    #[test]
    fn registration_path_exposes_restriction_and_inviter() {
        let restricted = create(&request(InviteType::Register, Some("bob"), true), T.into(), 0).unwrap();
        let v = validate(Some(T), HOST, stored(&restricted), Redemption::Account, 1).unwrap();
        assert_eq!((v.username.as_deref(), v.inviter.as_deref()), (Some("bob"), None));
        assert_eq!(v.jid, "bob@example.com");

        let contact = create(&request(InviteType::Roster, Some("alice"), true), T.into(), 0).unwrap();
        let v = validate(Some(T), HOST, stored(&contact), Redemption::Account, 1).unwrap();
        assert_eq!((v.username.as_deref(), v.inviter.as_deref()), (Some("alice"), Some("alice")));
        assert_eq!(v.kind, InviteType::Roster);

        let open = create(&request(InviteType::Register, None, true), T.into(), 0).unwrap();
        let v = validate(Some(T), HOST, stored(&open), Redemption::Account, 1).unwrap();
        assert_eq!((v.username, v.inviter), (None, None));
    }

    #[test]
    fn account_invites_report_a_local_creator_who_asked_for_a_subscription() {
        let account = create(&request(InviteType::Register, None, true), T.into(), 0).unwrap();
        let cases = [
            (Some("admin@example.com"), Some("admin")),
            (Some("admin@elsewhere.org"), None),
            (Some("example.com"), None),
            (Some("admin@example.com/laptop"), None),
            (None, None),
        ];
        for (creator, inviter) in cases {
            let record = Record { roster_subscription: creator.map(str::to_owned), ..account.clone() };
            let v = validate(Some(T), HOST, stored(&record), Redemption::Account, 1).unwrap();
            assert_eq!(v.inviter.as_deref(), inviter, "{creator:?}");
        }
    }

    #[test]
    fn contact_only_tokens_validate_without_a_host_record() {
        let redemption = Redemption::Contact { username: "alice", user_expiry: Some(100) };
        let v = validate(Some(T), HOST, Ok(None), redemption, 100).unwrap();
        assert_eq!(v.kind, InviteType::Roster);
        assert_eq!(v.uri, format!("xmpp:alice@example.com?roster;preauth={T}"));
        assert!(!v.reusable && !v.host_level);
        assert_eq!(use_plan(&v, Usage::default(), true).keys, vec![StoreKey { user: Some("alice".into()), token: T.into() }]);
        assert_eq!(validate(Some(T), HOST, Ok(None), redemption, 101), Err(Error::TokenExpired));
    }

    #[test]
    fn unreadable_records_are_invalid_tokens_and_revoke_their_host_half() {
        let malformed = || Err(Error::BadField("expires"));
        assert_eq!(validate(Some(T), HOST, malformed(), Redemption::Account, 0), Err(Error::TokenInvalid));
        let contact = Redemption::Contact { username: "alice", user_expiry: Some(100) };
        assert_eq!(validate(Some(T), HOST, malformed(), contact, 0), Err(Error::TokenInvalid), "even with a user-level half");
        assert_eq!(validate(None, HOST, malformed(), Redemption::Account, 0), Err(Error::TokenInvalid), "checked first");
        assert_eq!(revoke_plan(T, malformed(), None), vec![StoreKey { user: None, token: T.into() }]);
    }
}
