//! Claims on limited invites: at most as many registrations at a time with a token as it has
//! uses left.

use std::collections::HashMap;

use tracing::debug;

use crate::error::{Error, Result};
use crate::token::redact;

/// A claim to take on a limited invite: one of at most `slots` registrations on their way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The invite's token.
    pub token: String,
    /// How many registrations may be on their way with it at once (its uses left).
    pub slots: u32,
}

/// Seconds a claim on a single-use token outlives its holder's silence. Streams release their
/// claims when they close; this only frees tokens whose holder vanished without a trace (a web
/// registration whose account creation failed). Unauthenticated streams are closed long before.
pub const CLAIM_LEASE: i64 = 900;

/// Who holds a claim: an id the shim gives each stream (or web registration).
pub type Holder = u64;

/// What a finished registration finds in the claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// This holder claimed the token when the registration was allowed: redeem it.
    Claimed,
    /// Nobody claimed it (a reusable invite, or an event producer that never fired
    /// `user-registering`): redeem it if it is still stored.
    Unclaimed,
    /// Another holder claims it: this registration did not go through our checks; leave it.
    HeldByOther,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    holder: Holder,
    since: i64,
    /// The holder registered with it and the consume that settles it has not succeeded yet:
    /// nobody may claim it again (the holder neither), whatever the lease or the stream.
    spent: bool,
}

/// Claims on limited invites of one host: at most as many registrations at a time may be on
/// their way with a token as it has uses left (one for a single-use invite). In-process and
/// synchronous, so of racing streams exactly that many win.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    by_token: HashMap<String, Vec<Held>>,
}

impl Claims {
    /// No claims.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one of `claim.slots` claims on its token for `holder`. Refused while as many claims
    /// of other holders younger than [`CLAIM_LEASE`], and spent claims of anyone, are held; the
    /// same holder may claim again (a retry on the same stream) unless its claim is spent.
    pub fn claim(&mut self, claim: &Claim, holder: Holder, now: i64) -> Result<()> {
        let held = self.by_token.entry(claim.token.clone()).or_default();
        held.retain(|h| h.spent || (h.holder != holder && now.saturating_sub(h.since) < CLAIM_LEASE));
        if held.len() >= usize::try_from(claim.slots).unwrap_or(usize::MAX) {
            debug!("token {} is claimed by {} other registrations", redact(&claim.token), held.len());
            return Err(Error::InviteInUse);
        }
        held.push(Held { holder, since: now, spent: false });
        Ok(())
    }

    /// Settles a finished registration or reset with `token` by `holder`. A claim of this holder
    /// is kept, spent, until [`Claims::consumed`] says the invite was consumed: were storage to
    /// fail the consume, the invite must not register again meanwhile.
    pub fn settle(&mut self, token: &str, holder: Option<Holder>) -> Settlement {
        let Some(held) = self.by_token.get_mut(token) else {
            return Settlement::Unclaimed;
        };
        match held.iter_mut().find(|h| Some(h.holder) == holder && !h.spent) {
            Some(mine) => {
                mine.spent = true;
                Settlement::Claimed
            }
            None => Settlement::HeldByOther,
        }
    }

    /// The write that settles a use of `token` succeeded (`true`): one spent claim is dropped. It
    /// failed (`false`): the claim stays spent, so that no registration uses the invite until a
    /// retry succeeds.
    pub fn consumed(&mut self, token: &str, ok: bool, now: i64) {
        let held = self.by_token.entry(token.to_owned()).or_default();
        if ok {
            if let Some(index) = held.iter().position(|h| h.spent) {
                held.remove(index);
            }
        } else if !held.iter().any(|h| h.spent) {
            held.push(Held { holder: 0, since: now, spent: true });
        }
        if held.is_empty() {
            self.by_token.remove(token);
        }
    }

    /// Tokens whose consume failed and is still owed.
    pub fn unsettled(&self) -> Vec<String> {
        self.by_token.iter().filter(|(_, held)| held.iter().any(|h| h.spent)).map(|(token, _)| token.clone()).collect()
    }

    /// Releases every claim of `holder` (its stream closed without registering); returns how many.
    /// Spent claims stay: their consume is still owed.
    pub fn release(&mut self, holder: Holder) -> usize {
        let before = self.len();
        for held in self.by_token.values_mut() {
            held.retain(|h| h.holder != holder || h.spent);
        }
        self.by_token.retain(|_, held| !held.is_empty());
        before - self.len()
    }

    /// Drops claims older than the lease, except spent ones.
    pub fn expire(&mut self, now: i64) {
        for held in self.by_token.values_mut() {
            held.retain(|h| h.spent || now.saturating_sub(h.since) < CLAIM_LEASE);
        }
        self.by_token.retain(|_, held| !held.is_empty());
    }

    /// Number of live claims.
    pub fn len(&self) -> usize {
        self.by_token.values().map(Vec::len).sum()
    }

    /// Whether there are no claims.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "Xo3gdOvANs77aUhUX40RFxTZ";
    const U: &str = "Ux3gdOvANs77aUhUX40RFxTZ";

    fn one(token: &str) -> Claim {
        Claim { token: token.to_owned(), slots: 1 }
    }

    #[test]
    fn claims_let_as_many_holders_through_as_there_are_uses_left() {
        let mut claims = Claims::new();
        let two = Claim { token: T.to_owned(), slots: 2 };
        assert_eq!(claims.claim(&two, 1, 0), Ok(()));
        assert_eq!(claims.claim(&two, 2, 0), Ok(()));
        assert_eq!(claims.claim(&two, 3, 0), Err(Error::InviteInUse));
        assert_eq!(claims.claim(&two, 2, 1), Ok(()), "a holder may retry");
        assert_eq!(claims.len(), 2);
        assert_eq!(claims.settle(T, Some(1)), Settlement::Claimed);
        claims.consumed(T, true, 1);
        // One use recorded: one slot left, held by holder 2.
        let one_left = Claim { token: T.to_owned(), slots: 1 };
        assert_eq!(claims.claim(&one_left, 3, 2), Err(Error::InviteInUse));
        assert_eq!(claims.release(2), 1);
        assert_eq!(claims.claim(&one_left, 3, 2), Ok(()));
    }

    #[test]
    fn claims_let_exactly_one_holder_through() {
        let mut claims = Claims::new();
        assert_eq!(claims.claim(&one(T), 1, 0), Ok(()));
        assert_eq!(claims.claim(&one(T), 2, 1), Err(Error::InviteInUse));
        assert_eq!(claims.claim(&one(T), 1, 2), Ok(()), "the holder may retry");
        assert_eq!(claims.claim(&one(U), 2, 2), Ok(()), "other tokens are independent");
        assert_eq!(claims.settle(T, Some(2)), Settlement::HeldByOther);
        assert_eq!(claims.settle(T, None), Settlement::HeldByOther);
        assert_eq!(claims.settle(T, Some(1)), Settlement::Claimed);
        assert_eq!(claims.settle(T, Some(1)), Settlement::HeldByOther, "spent until consumed");
        claims.consumed(T, true, 3);
        assert_eq!(claims.settle(T, Some(1)), Settlement::Unclaimed);
        assert_eq!(claims.len(), 1);
    }

    #[test]
    fn a_failed_consume_keeps_the_claim_until_a_retry_succeeds() {
        let mut claims = Claims::new();
        claims.claim(&one(T), 1, 0).unwrap();
        assert_eq!(claims.settle(T, Some(1)), Settlement::Claimed);
        claims.consumed(T, false, 1);
        assert_eq!(claims.claim(&one(T), 2, 2), Err(Error::InviteInUse));
        assert_eq!(claims.claim(&one(T), 1, 2), Err(Error::InviteInUse), "not twice on the holder's stream");
        assert_eq!(claims.release(1), 0, "the stream ends: the consume is still owed");
        claims.expire(CLAIM_LEASE * 10);
        assert_eq!(claims.claim(&one(T), 2, CLAIM_LEASE * 10), Err(Error::InviteInUse), "no lease for a spent claim");
        assert_eq!(claims.unsettled(), vec![T.to_owned()]);
        claims.consumed(T, true, 3);
        assert!(claims.is_empty() && claims.unsettled().is_empty());
        // An unclaimed registration whose consume failed is held as well.
        claims.consumed(U, false, 4);
        assert_eq!(claims.claim(&one(U), 5, 5), Err(Error::InviteInUse));
    }

    #[test]
    fn claims_are_released_by_closing_streams_and_by_the_lease() {
        let mut claims = Claims::new();
        claims.claim(&one(T), 1, 0).unwrap();
        claims.claim(&one(U), 1, 0).unwrap();
        assert_eq!(claims.release(2), 0);
        assert_eq!(claims.release(1), 2);
        assert!(claims.is_empty());
        assert_eq!(claims.claim(&one(T), 2, 5), Ok(()), "free again after its holder left");

        claims.claim(&one(U), 3, 100).unwrap();
        assert_eq!(claims.claim(&one(U), 4, 100 + CLAIM_LEASE - 1), Err(Error::InviteInUse));
        assert_eq!(claims.claim(&one(U), 4, 100 + CLAIM_LEASE), Ok(()), "a silent holder loses it after the lease");
        claims.expire(5 + CLAIM_LEASE);
        assert_eq!(claims.len(), 1);
    }
}
