//! The index of usernames reserved by pending invites (mod_invites state).

use std::collections::HashMap;

use tracing::debug;

use crate::Result;
use crate::record::Record;
use crate::token::redact;

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

    /// Replaces the index with the reservations among `records` (the whole host-level map, as
    /// read: records that cannot be read reserve nothing).
    pub fn load(&mut self, records: impl IntoIterator<Item = Result<Record>>, now: i64) {
        self.by_name.clear();
        self.name_of.clear();
        self.loaded = true;
        for record in records.into_iter().flatten() {
            self.insert(&record, now);
        }
    }

    /// Notes a record just stored (as read back from what was stored: one that cannot be read
    /// reserves nothing). Until the index is loaded the load will find it instead.
    pub fn add(&mut self, record: Result<Option<Record>>, now: i64) {
        if let Ok(Some(record)) = record {
            self.insert(&record, now);
        }
    }

    fn insert(&mut self, record: &Record, now: i64) {
        if !self.loaded {
            return;
        }
        let Some(name) = record.reserves(now) else { return };
        self.remove(&record.token);
        let tokens = self.by_name.entry(name.to_owned()).or_default();
        let at = tokens.partition_point(|held| held < &(record.expires, record.token.clone()));
        tokens.insert(at, (record.expires, record.token.clone()));
        self.name_of.insert(record.token.clone(), name.to_owned());
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

    /// Whether the candidate's stored record as read now (`None`: gone; an error: unreadable)
    /// still reserves `username`; a candidate that does not is dropped from the index.
    pub fn confirm(&mut self, username: &str, token: &str, record: Result<Option<Record>>, now: i64) -> bool {
        if let Ok(Some(record)) = &record
            && record.token == token
            && record.reserves(now) == Some(username)
        {
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
        mut read: impl FnMut(&str) -> std::result::Result<Option<Record>, E>,
    ) -> std::result::Result<Option<String>, E> {
        for token in self.candidates(username) {
            let record = read(&token)?;
            if self.confirm(username, &token, Ok(record), now) {
                return Ok(Some(token));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::record::InviteType;

    fn record(token: &str, kind: InviteType, jid: &str, expires: i64, allow_reset: bool) -> Record {
        Record {
            kind,
            jid: jid.to_owned(),
            token: token.to_owned(),
            allow_registration: true,
            uri: None,
            created_at: None,
            expires,
            reusable: None,
            allow_reset,
            roster_subscription: None,
        }
    }

    #[test]
    fn reservations() {
        let entry = record;
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
            index.load(entries.iter().cloned().map(Ok), 0);
            assert_eq!(index.reserved_by(username, now, stored), Ok(expected.map(str::to_owned)), "{username} at {now}");
        }
    }

    #[test]
    fn reservation_index_follows_creates_removals_and_storage() {
        let entry = |token: &str, jid: &str, expires| record(token, InviteType::Register, jid, expires, false);
        let found = |token: &str| Ok(Some(token.to_owned()));
        let gone = |_: &str| Ok::<_, ()>(None);
        let mut index = Reservations::default();
        index.add(Ok(Some(entry("early", "bob@example.com", 100))), 0);
        assert!(!index.is_loaded());
        assert_eq!(index.reserved_by("bob", 0, gone), Ok(None), "nothing is noted before the load");

        index.load([Ok(entry("a", "bob@example.com", 200)), Err(Error::BadField("jid"))], 0);
        index.add(Ok(Some(entry("b", "bob@example.com", 100))), 0);
        index.add(Ok(Some(entry("c", "carol@example.com", 100))), 0);
        let mut stored =
            vec![entry("a", "bob@example.com", 200), entry("b", "bob@example.com", 100), entry("c", "carol@example.com", 100)];
        let read = |stored: &[Record]| {
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
        index.load(stored.iter().cloned().map(Ok), 0);
        assert!(!index.confirm("carol", "c", Err(Error::BadField("expires")), 0), "unreadable: dropped");
        assert_eq!(index.candidates("carol"), Vec::<String>::new());
        index.load(stored.iter().cloned().map(Ok), 0);
        assert_eq!(index.reserved_by("carol", 0, read(&stored)), found("c"), "the next load finds it again");
    }
}
