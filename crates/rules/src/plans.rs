//! Plans: which keys of the `invite_token` map using, revoking, purging or deleting an account
//! removes. The core decides; the shim deletes, in the order given.

use tracing::debug;

use crate::Result;
use crate::invite::ValidatedInvite;
use crate::jid::node_of;
use crate::record::Record;
use crate::record::{InviteKind, InviteType, is_current};
use crate::token::redact;

/// Seconds an expired record is kept before a purge removes it, so that a stream that
/// pre-authenticated just before expiry can still finish registering (XEP-0445 checks expiry at
/// pre-auth only).
pub const PURGE_GRACE: i64 = 3600;

/// A storage key of the `invite_token` map: `(user, token)`, `user = None` for host level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreKey {
    /// `None` for the host-level map, else the owning user.
    pub user: Option<String>,
    /// The token.
    pub token: String,
}

/// What a use of an invite does to storage: the keys to delete (empty when it stays usable) and
/// whether that consumes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsePlan {
    /// The keys to delete, in order.
    pub keys: Vec<StoreKey>,
    /// Whether the invite is used up (its keys are the invite's).
    pub consumed: bool,
}

/// How much of an invite is used, as read just before a use: its use limit
/// ([`crate::record::MaxUses::limit`]) and the uses its audit record holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `max_uses`, when the invite is limited.
    pub limit: Option<u32>,
    /// The uses recorded so far.
    pub uses: u32,
}

/// What storage holds of an invite, as read just before a registration decides or a use is
/// recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Whether its host-level record is still stored: it is deleted when the invite is used up
    /// (here, by `prosodyctl`, by a web registration) or revoked.
    pub stored: bool,
    /// Its use limit and the uses recorded so far.
    pub usage: Usage,
}

/// Plans a use of `invite` with `usage` as read just before. A use that is recorded
/// (`records_use`) consumes a limited invite when it is its last, whether or not the invite is
/// reusable; any other redemption (a single-use invite, `invite:use()` of the stock API) consumes
/// it unless it is reusable. Invites are deleted, never marked used, so the stock module cannot
/// see them as valid again.
///
/// The inviter's half of a contact invite goes first: a contact invite is valid only while that
/// half exists, so a deletion that fails half-way leaves a dead invite, never a usable half.
pub fn use_plan(invite: &ValidatedInvite, usage: Usage, records_use: bool) -> UsePlan {
    let consumed = match usage.limit {
        Some(max_uses) if records_use => usage.uses.saturating_add(1) >= max_uses,
        _ => !invite.reusable,
    };
    if !consumed {
        return UsePlan { keys: Vec::new(), consumed };
    }
    let mut keys = Vec::with_capacity(2);
    if invite.kind == InviteType::Roster {
        let owner = node_of(&invite.jid).or(invite.username.as_deref());
        if let Some(owner) = owner {
            keys.push(StoreKey { user: Some(owner.to_owned()), token: invite.token.clone() });
        }
    }
    if invite.host_level {
        keys.push(StoreKey { user: None, token: invite.token.clone() });
    }
    UsePlan { keys, consumed }
}

/// The keys that revoking `token` deletes, from its host-level record as read (see [`validate`])
/// and, when there is none (a contact-only invite), the `jid` of its audit record, which names
/// the inviter (`audit_jid`): both halves of a contact invite that allows registration (stock deleted only
/// the host half, leaving the token able to subscribe), the inviter's half first (see
/// [`use_plan`]). A record that cannot be read names no inviter: its host-level key goes, which
/// ends registration with it.
pub fn revoke_plan(token: &str, record: Result<Option<Record>>, audit_jid: Option<&str>) -> Vec<StoreKey> {
    let record = record.unwrap_or_else(|e| {
        debug!("revoking unreadable invite {}: {e}", redact(token));
        None
    });
    let mut keys = Vec::with_capacity(2);
    let owner = match &record {
        Some(record) => (record.kind == InviteType::Roster).then(|| node_of(&record.jid)).flatten(),
        None => audit_jid.and_then(node_of),
    };
    if let Some(owner) = owner {
        keys.push(StoreKey { user: Some(owner.to_owned()), token: token.to_owned() });
    }
    keys.push(StoreKey { user: None, token: token.to_owned() });
    keys
}

/// Whether a purge at `now` removes a record expiring at `expires`.
pub fn purged(expires: i64, now: i64) -> bool {
    expires < now.saturating_sub(PURGE_GRACE)
}

/// The user whose user-level entry holds a contact-only invite (one without a host-level record),
/// from its audit record's `kind` and `jid`: the inviter. `None` for every other kind.
pub fn entry_owner<'a>(kind: &str, jid: &'a str) -> Option<&'a str> {
    if kind == InviteKind::Contact.as_str() { node_of(jid) } else { None }
}

/// Tokens among `(token, expires)` entries that a purge at `now` removes.
pub fn purge_plan<'a>(entries: impl IntoIterator<Item = (&'a str, i64)>, now: i64) -> Vec<&'a str> {
    entries.into_iter().filter(|&(_, expires)| purged(expires, now)).map(|(token, _)| token).collect()
}

/// Host-level tokens that belong to a deleted account: its contact invites that allow
/// registration, and account or reset invites restricted to its name.
pub fn deleted_user_plan<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>, username: &str) -> Vec<&'a str> {
    entries.into_iter().filter(|&(_, jid)| node_of(jid) == Some(username)).map(|(token, _)| token).collect()
}

/// Tokens of host-level entries still pending at `now`, soonest expiry first.
pub fn pending<'a>(entries: impl IntoIterator<Item = (&'a str, i64)>, now: i64) -> Vec<&'a str> {
    let mut live: Vec<(&str, i64)> = entries.into_iter().filter(|&(_, expires)| is_current(expires, now)).collect();
    live.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    live.into_iter().map(|(token, _)| token).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invite::testing::{HOST, T, request, stored};
    use crate::invite::{Redemption, ValidatedInvite, create, validate};

    /// The keys an unlimited use deletes.
    fn used_keys(invite: &ValidatedInvite) -> Vec<StoreKey> {
        use_plan(invite, Usage::default(), true).keys
    }

    #[test]
    fn use_deletes_both_halves_and_spares_reusable_invites() {
        let record = create(&request(InviteType::Roster, Some("alice"), true), T.into(), 0).unwrap();
        let v = validate(Some(T), HOST, stored(&record), Redemption::Account, 1).unwrap();
        let both = vec![StoreKey { user: Some("alice".into()), token: T.into() }, StoreKey { user: None, token: T.into() }];
        assert_eq!(used_keys(&v), both);
        assert_eq!(revoke_plan(T, stored(&record), None), both);
        assert_eq!(revoke_plan(T, Ok(None), None), vec![StoreKey { user: None, token: T.into() }]);
        // A contact-only invite: no host-level record, its audit record names the contact.
        assert_eq!(revoke_plan(T, Ok(None), Some("alice@example.com")), both);
        assert_eq!(revoke_plan(T, stored(&record), Some("mallory@example.com")), both, "the record wins");

        let account = create(&request(InviteType::Register, Some("bob"), true), T.into(), 0).unwrap();
        let v = validate(Some(T), HOST, stored(&account), Redemption::Account, 1).unwrap();
        assert_eq!(used_keys(&v), vec![StoreKey { user: None, token: T.into() }]);

        let group = Record { reusable: Some(true), ..account };
        let v = validate(Some(T), HOST, stored(&group), Redemption::Account, 1).unwrap();
        assert!(used_keys(&v).is_empty());
    }

    #[test]
    fn a_limited_invite_goes_with_its_last_recorded_use() {
        let account = create(&request(InviteType::Register, None, true), T.into(), 0).unwrap();
        let host_key = vec![StoreKey { user: None, token: T.into() }];
        for reusable in [None, Some(true)] {
            let record = Record { reusable, ..account.clone() };
            let v = validate(Some(T), HOST, stored(&record), Redemption::Account, 1).unwrap();
            let limited = |uses| Usage { limit: Some(3), uses };
            let kept = UsePlan { keys: Vec::new(), consumed: false };
            let gone = UsePlan { keys: host_key.clone(), consumed: true };
            assert_eq!(use_plan(&v, limited(0), true), kept, "{reusable:?}: first of three");
            assert_eq!(use_plan(&v, limited(1), true), kept, "{reusable:?}: second of three");
            assert_eq!(use_plan(&v, limited(2), true), gone, "{reusable:?}: the last");
            assert_eq!(use_plan(&v, limited(7), true), gone, "{reusable:?}: past the limit (uses from elsewhere)");
            // Not a recorded use (the stock API's invite:use()): the kind decides, as in stock.
            assert_eq!(use_plan(&v, limited(0), false).consumed, reusable.is_none(), "{reusable:?}: use()");
        }
    }

    #[test]
    fn only_contact_only_invites_live_in_an_entry_of_their_inviter() {
        assert_eq!(entry_owner("contact", "alice@example.com"), Some("alice"));
        assert_eq!(entry_owner("contact", "example.com"), None);
        assert_eq!(entry_owner("contact", "alice@example.com/laptop"), Some("alice"));
        for kind in ["account", "account-and-contact", "reset", "junk"] {
            assert_eq!(entry_owner(kind, "alice@example.com"), None, "{kind}");
        }
    }

    #[test]
    fn purge_waits_for_the_grace_period() {
        let now = 100_000;
        let entries =
            [("fresh", now + 10), ("just-expired", now - 1), ("edge", now - PURGE_GRACE), ("old", now - PURGE_GRACE - 1)];
        assert_eq!(purge_plan(entries, now), vec!["old"]);
    }

    #[test]
    fn pending_lists_current_invites_in_expiry_order() {
        let entries = [("b", 50), ("a", 50), ("gone", 9), ("c", 10)];
        assert_eq!(pending(entries, 10), vec!["c", "a", "b"]);
    }

    #[test]
    fn deleted_user_takes_its_named_invites_along() {
        let entries =
            [("t1", "alice@example.com"), ("t2", "example.com"), ("t3", "alicia@example.com"), ("t4", "alice@example.com")];
        assert_eq!(deleted_user_plan(entries, "alice"), vec!["t1", "t4"]);
    }
}
