//! Moving invites between the two storage layouts (`lua/invites_storage.lib.lua`): the
//! per-invite one (an entry per invite in store `invites`, holding its audit record and, while
//! it is pending, its host-level record) and the stock one (the host-level map of
//! `invite_token`, audit records in `invites_audit`). From what each layout holds of an invite
//! the core decides what the target layout gets and how the summary counts it; the shim reads,
//! writes and removes, a batch at a time.
//!
//! The shim writes an invite to the target layout before it removes it from the source, and
//! where both layouts hold an invite the per-invite entry wins (it alone knows whether the
//! invite was used or revoked since), so a move can be interrupted and run again: nothing is
//! lost, duplicated or revived.

use std::collections::HashSet;

use crate::plans::purged;

/// How many invites a move handles at once, at least: the stock host-level map is one record
/// (one file on internal storage) that each batch rewrites whole.
pub const MIN_BATCH: usize = 500;

/// At most this many batches make a move, so rewriting the stock map stays O(N) in all.
pub const MAX_BATCHES: usize = 10;

/// The size of the batches of a move of `total` invites: at least [`MIN_BATCH`], at most
/// [`MAX_BATCHES`] batches.
pub fn batch_size(total: usize) -> usize {
    MIN_BATCH.max(total.div_ceil(MAX_BATCHES))
}

/// An invite's host-level record as a move finds it (in the stock map, or in an entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRecord {
    /// None is stored: the invite was used, revoked or purged (only its audit record is left).
    Absent,
    /// Stored, and not past what a purge removes: the invite moves as pending.
    Pending,
    /// Stored, and a purge would remove it (an hour past its expiry): left behind.
    Expired,
}

impl HostRecord {
    /// A stored record expiring at `expires` (`None`: it has no readable expiry, which no purge
    /// removes) as a move at `now` judges it. `now = None` is a move on a miss (a token looked up
    /// in the stock layout): it judges nothing expired, since validation refuses an expired
    /// invite and the next purge removes it and counts it.
    pub fn stored(expires: Option<i64>, now: Option<i64>) -> Self {
        match (expires, now) {
            (Some(expires), Some(now)) if purged(expires, now) => Self::Expired,
            _ => Self::Pending,
        }
    }

    /// The count of an invite moved with this record.
    fn count(self) -> Count {
        match self {
            Self::Pending => Count::Moved,
            Self::Expired => Count::Expired,
            Self::Absent => Count::Ended,
        }
    }
}

/// What a move's summary counts an invite as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A pending invite, moved.
    Moved,
    /// An expired invite, left behind (its audit record moves).
    Expired,
    /// A used or revoked invite: its audit record moved.
    Ended,
    /// In the target layout already.
    Already,
}

impl Count {
    /// The name the shim's summary uses: `moved`, `expired`, `ended`, `already`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Moved => "moved",
            Self::Expired => "expired",
            Self::Ended => "ended",
            Self::Already => "already",
        }
    }
}

/// The stock layout's audit record of an invite (store `invites_audit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockAudit {
    /// None is stored (the stock modules keep none).
    Absent,
    /// An audit record (a table).
    Stored,
    /// Something that is not a table: not an audit record, never moved (but removed with the
    /// invite).
    Junk,
}

/// What the layouts hold of an invite that a move into the per-invite layout finds in the stock
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockHolding {
    /// Whether the per-invite layout has an entry for it already.
    pub entry: bool,
    /// Its stock host-level record.
    pub record: HostRecord,
    /// Its stock audit record.
    pub audit: StockAudit,
}

/// Where the entry written for an invite comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFrom {
    /// The stock audit record.
    StoredAudit,
    /// An audit record made up from the host-level record (the stock modules keep none).
    MadeUp,
}

/// What a move into the per-invite layout does with one invite: the entry it writes, then the
/// removal of the stock audit record. The invite's stock host-level key is removed in any case,
/// with the rest of its batch, after the batch's entries are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntoEntry {
    /// The entry written: `None` writes nothing.
    pub entry: Option<EntryFrom>,
    /// Whether the entry holds the host-level record (the invite stays pending).
    pub with_record: bool,
    /// Whether the stock audit record is removed.
    pub drop_audit: bool,
    /// How the summary counts it.
    pub count: Count,
}

/// What a move into the per-invite layout does with an invite the stock layout holds. An entry
/// found there wins: it is kept as it is. Else a pending invite moves with its audit record (or
/// one made up, when there is none or it is junk) and its host-level record; an expired or ended
/// one moves with its audit record only (an expired invite without one leaves nothing).
pub fn into_entry(holding: StockHolding) -> IntoEntry {
    let drop_audit = holding.audit != StockAudit::Absent;
    if holding.entry {
        return IntoEntry { entry: None, with_record: false, drop_audit, count: Count::Already };
    }
    let pending = holding.record == HostRecord::Pending;
    let entry = match holding.audit {
        StockAudit::Stored => Some(EntryFrom::StoredAudit),
        StockAudit::Absent | StockAudit::Junk => pending.then_some(EntryFrom::MadeUp),
    };
    IntoEntry { entry, with_record: pending, drop_audit, count: holding.record.count() }
}

/// What the per-invite layout holds of an invite (an entry) that a move into the stock layout
/// finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// An empty record without an entry, left by a deletion interrupted on internal storage.
    Empty,
    /// Something that is not a table: not an invite.
    Junk,
    /// An entry, holding its host-level record or not.
    Invite(HostRecord),
}

/// What a move into the stock layout does with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntoStock {
    /// Remove the empty record.
    RemoveEmpty,
    /// Leave it: not an invite, not counted.
    Leave,
    /// Move it: its host-level key in the stock map written (`write_record`: the invite is
    /// pending) or removed (an ended invite's record left by an interrupted move), with the rest
    /// of the batch; then its audit record (the entry without its host-level record) written to
    /// `invites_audit`, its name index entry removed, and the entry removed.
    Move {
        /// Whether the stock map gets the host-level record, else loses the token's key.
        write_record: bool,
        /// How the summary counts it.
        count: Count,
    },
}

/// What a move into the stock layout does with an entry: pending invites become stock
/// host-level records; every invite's audit record moves.
pub fn into_stock(entry: Entry) -> IntoStock {
    match entry {
        Entry::Empty => IntoStock::RemoveEmpty,
        Entry::Junk => IntoStock::Leave,
        Entry::Invite(record) => IntoStock::Move { write_record: record == HostRecord::Pending, count: record.count() },
    }
}

/// The summary's "already there" of a move into the stock layout: the host-level records the
/// stock map held before it (`stock_tokens`) of invites it did not move from an entry.
pub fn already_in_stock<'a>(stock_tokens: impl IntoIterator<Item = &'a str>, moved: &HashSet<&str>) -> usize {
    stock_tokens.into_iter().filter(|token| !moved.contains(token)).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plans::PURGE_GRACE;

    use Count::{Already, Ended, Moved};
    use EntryFrom::*;
    use HostRecord::{Absent, Expired, Pending};

    #[test]
    fn batches_are_at_least_500_and_at_most_ten() {
        for (total, size) in [(0, 500), (1, 500), (500, 500), (5_000, 500), (5_001, 501), (10_000, 1_000), (10_001, 1_001)] {
            assert_eq!(batch_size(total), size, "{total}");
            assert!(total.div_ceil(batch_size(total)) <= MAX_BATCHES);
        }
    }

    #[test]
    fn a_record_is_expired_as_a_purge_counts_it_and_never_on_a_miss() {
        let now = 100_000;
        for (expires, now, judged) in [
            (Some(now + 1), Some(now), Pending),
            (Some(now - 1), Some(now), Pending),
            (Some(now - PURGE_GRACE), Some(now), Pending),
            (Some(now - PURGE_GRACE - 1), Some(now), Expired),
            (None, Some(now), Pending),
            (Some(0), None, Pending),
        ] {
            assert_eq!(HostRecord::stored(expires, now), judged, "{expires:?} at {now:?}");
        }
    }

    /// Every combination of what the layouts hold, and what a move into the per-invite layout
    /// does: (entry there, stock record, stock audit) -> (entry written, with the record, stock
    /// audit removed, count).
    #[test]
    fn into_entry_for_every_holding() {
        let cases = [
            // The per-invite entry wins: written by an interrupted run, or used since.
            ((true, Absent, StockAudit::Absent), (None, false, false, Already)),
            ((true, Absent, StockAudit::Stored), (None, false, true, Already)),
            ((true, Absent, StockAudit::Junk), (None, false, true, Already)),
            ((true, Pending, StockAudit::Absent), (None, false, false, Already)),
            ((true, Pending, StockAudit::Stored), (None, false, true, Already)),
            ((true, Pending, StockAudit::Junk), (None, false, true, Already)),
            ((true, Expired, StockAudit::Absent), (None, false, false, Already)),
            ((true, Expired, StockAudit::Stored), (None, false, true, Already)),
            ((true, Expired, StockAudit::Junk), (None, false, true, Already)),
            // Ended: the audit record moves, junk does not.
            ((false, Absent, StockAudit::Absent), (None, false, false, Ended)),
            ((false, Absent, StockAudit::Stored), (Some(StoredAudit), false, true, Ended)),
            ((false, Absent, StockAudit::Junk), (None, false, true, Ended)),
            // Pending: with its record, and an audit record made up when it has none.
            ((false, Pending, StockAudit::Absent), (Some(MadeUp), true, false, Moved)),
            ((false, Pending, StockAudit::Stored), (Some(StoredAudit), true, true, Moved)),
            ((false, Pending, StockAudit::Junk), (Some(MadeUp), true, true, Moved)),
            // Expired: left behind; its audit record moves, when it has one.
            ((false, Expired, StockAudit::Absent), (None, false, false, Count::Expired)),
            ((false, Expired, StockAudit::Stored), (Some(StoredAudit), false, true, Count::Expired)),
            ((false, Expired, StockAudit::Junk), (None, false, true, Count::Expired)),
        ];
        for ((entry, record, audit), (written, with_record, drop_audit, count)) in cases {
            let holding = StockHolding { entry, record, audit };
            assert_eq!(into_entry(holding), IntoEntry { entry: written, with_record, drop_audit, count }, "{holding:?}");
        }
    }

    #[test]
    fn into_stock_for_every_entry() {
        let cases = [
            (Entry::Empty, IntoStock::RemoveEmpty),
            (Entry::Junk, IntoStock::Leave),
            (Entry::Invite(Pending), IntoStock::Move { write_record: true, count: Moved }),
            (Entry::Invite(Expired), IntoStock::Move { write_record: false, count: Count::Expired }),
            (Entry::Invite(Absent), IntoStock::Move { write_record: false, count: Ended }),
        ];
        for (entry, plan) in cases {
            assert_eq!(into_stock(entry), plan, "{entry:?}");
        }
    }

    #[test]
    fn already_in_stock_counts_what_no_entry_moved() {
        let moved = HashSet::from(["a", "b"]);
        assert_eq!(already_in_stock(["a", "c", "d"], &moved), 2);
        assert_eq!(already_in_stock([], &moved), 0);
    }

    #[test]
    fn counts_have_the_summarys_names() {
        let names: Vec<_> = [Moved, Count::Expired, Ended, Already].into_iter().map(Count::as_str).collect();
        assert_eq!(names, ["moved", "expired", "ended", "already"]);
    }
}
