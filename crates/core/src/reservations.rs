//! The index of usernames reserved by pending invites (mod_invites state).

#![forbid(unsafe_code)]

use std::collections::HashMap;

use tracing::debug;

use crate::invite::{InviteType, is_current, node_of};
use crate::token::redact;

/// A host-level record as far as reservations care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationEntry {
    /// The token.
    pub token: String,
    /// `type`.
    pub kind: InviteType,
    /// `jid`.
    pub jid: String,
    /// `expires`.
    pub expires: i64,
    /// Whether it is a password-reset invite (those never create the account, so they reserve
    /// nothing).
    pub reset: bool,
}

impl ReservationEntry {
    /// The username this record reserves at `now`: a pending account invite restricted to a
    /// name reserves it until it expires (XEP-0445).
    pub fn reserves(&self, now: i64) -> Option<&str> {
        if self.kind != InviteType::Register || self.reset || !is_current(self.expires, now) {
            return None;
        }
        node_of(&self.jid)
    }
}

/// The usernames reserved by pending invites, held in memory so that a registration does not
/// read every stored invite. Loaded from storage on first use and again at each purge; the
/// invites this process creates and removes keep it current in between. Every answer is
/// confirmed by reading the reserving record, so a record changed or removed behind the
/// server's back is dropped rather than believed.
#[derive(Debug, Default)]
pub struct Reservations {
    loaded: bool,
    /// Username to its reserving tokens, earliest expiry first.
    by_name: HashMap<String, Vec<(i64, String)>>,
    name_of: HashMap<String, String>,
}

impl Reservations {
    /// Whether the index has been loaded from storage.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Replaces the index with the reservations among `entries` (the whole host-level map).
    pub fn load(&mut self, entries: impl IntoIterator<Item = ReservationEntry>, now: i64) {
        self.by_name.clear();
        self.name_of.clear();
        self.loaded = true;
        for entry in entries {
            self.add(&entry, now);
        }
    }

    /// Notes a record just stored. Until the index is loaded the load will find it instead.
    pub fn add(&mut self, entry: &ReservationEntry, now: i64) {
        if !self.loaded {
            return;
        }
        let Some(name) = entry.reserves(now) else { return };
        self.remove(&entry.token);
        let tokens = self.by_name.entry(name.to_owned()).or_default();
        let at = tokens.partition_point(|held| held < &(entry.expires, entry.token.clone()));
        tokens.insert(at, (entry.expires, entry.token.clone()));
        self.name_of.insert(entry.token.clone(), name.to_owned());
    }

    /// Forgets a token whose record was removed.
    pub fn remove(&mut self, token: &str) {
        let Some(name) = self.name_of.remove(token) else { return };
        if let Some(tokens) = self.by_name.get_mut(&name) {
            tokens.retain(|(_, held)| held != token);
            if tokens.is_empty() {
                self.by_name.remove(&name);
            }
        }
    }

    /// The tokens of the pending invites that may reserve `username`, earliest expiry first. The
    /// caller reads each record and asks [`Reservations::confirm`] (this index does no I/O).
    pub fn candidates(&self, username: &str) -> Vec<String> {
        self.by_name.get(username).map(|held| held.iter().map(|(_, token)| token.clone()).collect()).unwrap_or_default()
    }

    /// Whether `entry` (the candidate's stored record as read now, `None`: gone) still reserves
    /// `username`; a candidate that does not is dropped from the index.
    pub fn confirm(&mut self, username: &str, token: &str, entry: Option<&ReservationEntry>, now: i64) -> bool {
        if entry.is_some_and(|entry| entry.token == token && entry.reserves(now) == Some(username)) {
            return true;
        }
        debug!("invite {} no longer reserves {username}", redact(token));
        self.remove(token);
        false
    }

    /// The token of the earliest-expiring pending invite that reserves `username`, each
    /// candidate confirmed against its record as `read` returns it; the shim's loop, for tests.
    #[cfg(test)]
    fn reserved_by<E>(
        &mut self,
        username: &str,
        now: i64,
        mut read: impl FnMut(&str) -> Result<Option<ReservationEntry>, E>,
    ) -> Result<Option<String>, E> {
        for token in self.candidates(username) {
            let entry = read(&token)?;
            if self.confirm(username, &token, entry.as_ref(), now) {
                return Ok(Some(token));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations() {
        let entry = |token: &str, kind, jid: &str, expires, reset| ReservationEntry {
            token: token.to_owned(),
            kind,
            jid: jid.to_owned(),
            expires,
            reset,
        };
        let entries = [
            entry("open", InviteType::Register, "example.com", 100, false),
            entry("late", InviteType::Register, "bob@example.com", 300, false),
            entry("bob", InviteType::Register, "bob@example.com", 200, false),
            entry("old", InviteType::Register, "bob@example.com", 10, false),
            entry("reset", InviteType::Register, "carol@example.com", 100, true),
            entry("contact", InviteType::Roster, "dave@example.com", 100, false),
        ];
        let stored = |token: &str| Ok::<_, ()>(entries.iter().find(|e| e.token == token).cloned());
        let cases = [
            ("bob", 50, Some("bob")),
            ("bob", 250, Some("late")),
            ("bob", 301, None),
            ("carol", 50, None),
            ("dave", 50, None),
            ("eve", 50, None),
        ];
        for (username, now, expected) in cases {
            let mut index = Reservations::default();
            index.load(entries.iter().cloned(), 0);
            assert_eq!(index.reserved_by(username, now, stored), Ok(expected.map(str::to_owned)), "{username} at {now}");
        }
    }

    #[test]
    fn reservation_index_follows_creates_removals_and_storage() {
        let entry = |token: &str, jid: &str, expires| ReservationEntry {
            token: token.to_owned(),
            kind: InviteType::Register,
            jid: jid.to_owned(),
            expires,
            reset: false,
        };
        let found = |token: &str| Ok(Some(token.to_owned()));
        let gone = |_: &str| Ok::<_, ()>(None);
        let mut index = Reservations::default();
        index.add(&entry("early", "bob@example.com", 100), 0);
        assert!(!index.is_loaded());
        assert_eq!(index.reserved_by("bob", 0, gone), Ok(None), "nothing is noted before the load");

        index.load([entry("a", "bob@example.com", 200)], 0);
        index.add(&entry("b", "bob@example.com", 100), 0);
        index.add(&entry("c", "carol@example.com", 100), 0);
        let mut stored =
            vec![entry("a", "bob@example.com", 200), entry("b", "bob@example.com", 100), entry("c", "carol@example.com", 100)];
        let read = |stored: &[ReservationEntry]| {
            let stored = stored.to_vec();
            move |token: &str| Ok::<_, ()>(stored.iter().find(|e| e.token == token).cloned())
        };
        assert_eq!(index.reserved_by("bob", 0, read(&stored)), found("b"), "earliest expiry first");
        index.remove("b");
        assert_eq!(index.reserved_by("bob", 0, read(&stored)), found("a"));

        // A failed read answers with the error and keeps the entry.
        assert_eq!(index.reserved_by("bob", 0, |_| Err("storage down")), Err("storage down"));
        assert_eq!(index.reserved_by("bob", 0, read(&stored)), found("a"));

        // Backdated in storage behind the index's back: the stored record wins.
        stored[0].expires = 0;
        assert_eq!(index.reserved_by("bob", 10, read(&stored)), Ok(None));
        stored[0].expires = 200;
        assert_eq!(index.reserved_by("bob", 10, read(&stored)), Ok(None), "a record found stale is dropped");

        // Removed behind its back.
        assert_eq!(index.reserved_by("carol", 0, gone), Ok(None));
        index.load(stored.iter().cloned(), 0);
        assert_eq!(index.reserved_by("carol", 0, read(&stored)), found("c"), "the next load finds it again");
    }
}
