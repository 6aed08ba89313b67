//! The invite lifecycle: what state an invite is in, how many uses it has left, whether a user may
//! create another one (quotas), and when its audit record may go.
//!
//! The audit record itself (who created an invite, who used it) lives in a store of its own that
//! the shim reads and writes; these rules only look at the facts it passes.

use crate::datetime::format_datetime;
use crate::error::Error;

/// Where an invite is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Stored and not expired: it can still be used.
    Pending,
    /// Every use it allowed has been made.
    Used,
    /// Its time ran out before it was used up.
    Expired,
    /// Deleted by an operator, a user or a clean-up before it was used up.
    Revoked,
}

impl State {
    /// The state's name, as the admin views show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Used => "used",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// What is known of one invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Whether `invite_token` still holds it (either half).
    pub stored: bool,
    /// When it expires, Unix seconds.
    pub expires: i64,
    /// Uses recorded in its audit record.
    pub uses: u32,
    /// `additional_data.max_uses`.
    pub max_uses: Option<u32>,
    /// It may be used until it expires (group invites).
    pub reusable: bool,
    /// When it was revoked, if the audit record says so.
    pub revoked_at: Option<i64>,
}

/// Uses left: `None` for an unlimited (reusable, unlimited) invite.
pub fn uses_left(max_uses: Option<u32>, reusable: bool, uses: u32) -> Option<u32> {
    match max_uses {
        Some(max_uses) => Some(max_uses.saturating_sub(uses)),
        None if reusable => None,
        None => Some(u32::from(uses == 0)),
    }
}

/// The state of an invite at `now`.
pub fn state(facts: &Facts, now: i64) -> State {
    let used_up = uses_left(facts.max_uses, facts.reusable, facts.uses) == Some(0);
    if used_up {
        State::Used
    } else if facts.revoked_at.is_some() {
        State::Revoked
    } else if now > facts.expires {
        State::Expired
    } else if facts.stored {
        State::Pending
    } else {
        // Gone from storage without a recorded use or revocation: used by a process that kept
        // no audit (the stock modules, an older version), or deleted behind our back.
        State::Used
    }
}

/// What revoking an invite does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Its stored keys go.
    pub removes: bool,
    /// A revocation is recorded (and counted, and told): only a pending invite is revoked.
    pub records: bool,
}

/// What revoking an invite does at `now`: a pending invite is revoked; an expired one still stored
/// (the purge waits an hour, and a stream that pre-authenticated in time could still register with
/// it) is removed without a revocation recorded; anything else is left as it is, and the answer
/// is its [`state`].
pub fn revocation(facts: &Facts, now: i64) -> Revocation {
    match state(facts, now) {
        State::Pending => Revocation { removes: true, records: true },
        State::Expired if facts.stored => Revocation { removes: true, records: false },
        _ => Revocation { removes: false, records: false },
    }
}

/// When an invite's life ended (for audit retention), or `None` while it is pending.
pub fn ended_at(facts: &Facts, last_use: Option<i64>, now: i64) -> Option<i64> {
    match state(facts, now) {
        State::Pending => None,
        State::Revoked => facts.revoked_at,
        State::Used => Some(last_use.unwrap_or(facts.expires).min(facts.expires)),
        State::Expired => Some(facts.expires),
    }
}

/// Whether an audit record may be dropped: its invite ended more than `retention` seconds ago.
pub fn audit_expired(ended_at: Option<i64>, retention: u64, now: i64) -> bool {
    let retention = i64::try_from(retention).unwrap_or(i64::MAX);
    ended_at.is_some_and(|ended| now.saturating_sub(ended) > retention)
}

/// `invites_user_quota`: at most `count` invites per `period` seconds (`period_text` as the
/// operator wrote it, for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// Invites a user may create per period.
    pub count: u32,
    /// The period, in seconds.
    pub period: u64,
    /// The period as configured, for messages.
    pub period_text: String,
}

fn plural(n: u32, one: &str) -> String {
    if n == 1 { format!("{n} {one}") } else { format!("{n} {one}s") }
}

/// Whether a user who created invites at `created` (Unix times) and has `pending` invites
/// outstanding may create another at `now`; refused with [`Error::QuotaExceeded`] and a sentence
/// for them.
pub fn quota_check(
    created: &[i64],
    pending: u32,
    quota: Option<&Quota>,
    max_pending: Option<u32>,
    now: i64,
) -> Result<(), Error> {
    if let Some(max_pending) = max_pending
        && pending >= max_pending
    {
        return Err(Error::QuotaExceeded(format!(
            "You can have {} outstanding at a time; revoke one, or wait until one is used or expires",
            plural(max_pending, "invite")
        )));
    }
    let Some(quota) = quota else {
        return Ok(());
    };
    let period = i64::try_from(quota.period).unwrap_or(i64::MAX);
    let since = now.saturating_sub(period);
    let mut recent: Vec<i64> = created.iter().copied().filter(|&at| at > since).collect();
    if recent.len() < usize::try_from(quota.count).unwrap_or(usize::MAX) {
        return Ok(());
    }
    recent.sort_unstable();
    // The oldest invites in the window leave it first; the next one is possible when enough have.
    let index = recent.len() - usize::try_from(quota.count).unwrap_or(usize::MAX).min(recent.len());
    let next = recent.get(index).map_or(now, |&at| at.saturating_add(period).saturating_add(1));
    let day = format_datetime(next).get(..10).map(str::to_owned).unwrap_or_default();
    let per = quota.period_text.trim_start_matches(|c: char| c == '1' || c.is_whitespace());
    Err(Error::QuotaExceeded(format!(
        "You can create {} per {per}; the next one is possible on {day}",
        plural(quota.count, "invite")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn facts(stored: bool, uses: u32, max_uses: Option<u32>, reusable: bool, revoked_at: Option<i64>) -> Facts {
        Facts { stored, expires: 10 * DAY, uses, max_uses, reusable, revoked_at }
    }

    #[test]
    fn states() {
        let now = DAY;
        assert_eq!(state(&facts(true, 0, None, false, None), now), State::Pending);
        assert_eq!(state(&facts(false, 1, None, false, None), now), State::Used);
        assert_eq!(state(&facts(true, 1, Some(3), false, None), now), State::Pending);
        assert_eq!(state(&facts(false, 3, Some(3), false, None), now), State::Used);
        assert_eq!(state(&facts(false, 1, Some(3), false, Some(now)), now), State::Revoked);
        assert_eq!(state(&facts(true, 0, None, false, None), 11 * DAY), State::Expired);
        assert_eq!(state(&facts(true, 5, None, true, None), now), State::Pending, "reusable without limit");
        assert_eq!(state(&facts(false, 0, None, false, None), now), State::Used, "gone without a trace");
    }

    #[test]
    fn only_pending_invites_are_revoked_and_expired_ones_still_stored_removed() {
        let (now, later) = (DAY, 11 * DAY);
        let revoke = Revocation { removes: true, records: true };
        let remove = Revocation { removes: true, records: false };
        let leave = Revocation { removes: false, records: false };
        let cases = [
            ("pending", facts(true, 0, None, false, None), now, revoke),
            ("pending, uses left", facts(true, 1, Some(3), false, None), now, revoke),
            ("used", facts(false, 1, None, false, None), now, leave),
            ("used up, record still there", facts(true, 3, Some(3), true, None), now, leave),
            ("revoked", facts(false, 0, None, false, Some(now)), now, leave),
            ("expired, still stored", facts(true, 0, None, false, None), later, remove),
            ("expired and purged", facts(false, 0, None, false, None), later, leave),
        ];
        for (name, facts, at, expected) in cases {
            assert_eq!(revocation(&facts, at), expected, "{name}");
        }
    }

    #[test]
    fn uses_left_per_kind() {
        assert_eq!(uses_left(None, false, 0), Some(1));
        assert_eq!(uses_left(None, false, 1), Some(0));
        assert_eq!(uses_left(None, true, 7), None);
        assert_eq!(uses_left(Some(20), false, 3), Some(17));
        assert_eq!(uses_left(Some(2), true, 5), Some(0));
    }

    #[test]
    fn audit_records_outlive_their_invites_by_the_retention() {
        let retention = 90 * 86_400;
        let ended = ended_at(&facts(false, 1, None, false, None), Some(DAY), 2 * DAY);
        assert_eq!(ended, Some(DAY));
        assert!(!audit_expired(ended, retention, DAY + 90 * DAY));
        assert!(audit_expired(ended, retention, DAY + 90 * DAY + 1));
        assert_eq!(ended_at(&facts(true, 0, None, false, None), None, DAY), None, "pending: kept");
        assert!(!audit_expired(None, 0, i64::MAX));
    }

    #[test]
    fn quotas() {
        let week = Quota { count: 2, period: 7 * 86_400, period_text: "1 week".into() };
        let now = 1_796_000_000;
        assert_eq!(quota_check(&[], 0, Some(&week), None, now), Ok(()));
        assert_eq!(quota_check(&[now - 8 * DAY, now - 9 * DAY], 0, Some(&week), None, now), Ok(()), "outside the window");
        let refused = quota_check(&[now - 3 * DAY, now - DAY], 0, Some(&week), None, now).unwrap_err();
        // The older one leaves the window four days from now.
        let day = &format_datetime(now + 4 * DAY + 1)[..10];
        assert_eq!(refused.to_string(), format!("You can create 2 invites per week; the next one is possible on {day}"));
        let pending = quota_check(&[], 5, None, Some(5), now).unwrap_err();
        assert!(pending.to_string().starts_with("You can have 5 invites outstanding"));
        assert_eq!(pending.code(), "quota-exceeded");
        assert_eq!(quota_check(&[now; 10], 4, None, Some(5), now), Ok(()));
    }
}
