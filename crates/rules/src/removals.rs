//! What this process removed lately, so a registration need not read an invite it validated a
//! moment ago again.

use std::collections::{HashSet, VecDeque};

/// How many removals [`Removals`] remembers.
pub const REMEMBERED_REMOVALS: usize = 10_000;

/// The host-level records this process removed lately (used, revoked, purged). An invite
/// validated a moment ago is known to be still stored unless one of these removed it, so a
/// registration need not read it again; once the memory has moved past its validation, the
/// answer is unknown and the caller reads storage.
#[derive(Debug)]
pub struct Removals {
    recent: VecDeque<(i64, String)>,
    tokens: HashSet<String>,
    /// Removals at or before this time may have been forgotten (or happened before this memory
    /// existed, in another module instance).
    forgotten_until: i64,
}

impl Removals {
    /// An empty memory, started at `now`.
    pub fn new(now: i64) -> Self {
        Self { recent: VecDeque::new(), tokens: HashSet::new(), forgotten_until: now }
    }

    /// Remembers that `token`'s host-level record was removed at `now`.
    pub fn note(&mut self, token: &str, now: i64) {
        if !self.tokens.insert(token.to_owned()) {
            return;
        }
        self.recent.push_back((now, token.to_owned()));
        while self.recent.len() > REMEMBERED_REMOVALS {
            let Some((at, old)) = self.recent.pop_front() else { break };
            self.tokens.remove(&old);
            self.forgotten_until = self.forgotten_until.max(at);
        }
    }

    /// Whether the record of `token`, found stored when validated at `validated_at`, still is:
    /// `None` when this memory cannot tell.
    pub fn still_stored(&self, token: &str, validated_at: i64) -> Option<bool> {
        if self.tokens.contains(token) {
            return Some(false);
        }
        (validated_at > self.forgotten_until).then_some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removals_tell_whether_a_validated_invite_is_still_stored() {
        let mut removals = Removals::new(100);
        assert_eq!(removals.still_stored("a", 100), None, "validated before the memory began");
        assert_eq!(removals.still_stored("a", 101), Some(true));
        removals.note("a", 102);
        assert_eq!(removals.still_stored("a", 101), Some(false));
        assert_eq!(removals.still_stored("b", 101), Some(true));
        for i in 0..REMEMBERED_REMOVALS {
            removals.note(&format!("t{i}"), 200);
        }
        assert_eq!(removals.still_stored("a", 101), None, "forgotten: storage must tell");
        assert_eq!(removals.still_stored("b", 102), None, "validated when a forgotten removal happened");
        assert_eq!(removals.still_stored("b", 103), Some(true));
        assert_eq!(removals.still_stored("t9", 201), Some(false));
    }
}
