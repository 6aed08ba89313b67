//! The rules of invite-based registration (XEP-0401, XEP-0445) and server-side pre-authenticated
//! roster subscription (XEP-0379), as `mod_invites_register` applies them.
//!
//! Everything here is pure or a small in-memory state machine the shim owns per host: which
//! streams get the invite stream features, what a pre-auth iq is answered with, when an address
//! is throttled, whether a registration may go ahead with the invite it presents, which stream
//! holds the single-use claim on a token, and what a `subscribe` with a token leads to. The shim
//! reads storage and configuration, hooks the events and carries out the decisions.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};

use tracing::{debug, info};

use crate::invite::{InviteType, is_current, node_of};
use crate::token::{check_token, redact};

/// Text of the pre-auth error, as the stock module words it.
pub const INVALID_TOKEN_TEXT: &str = "The invite token is invalid or expired";

/// Text of the invite-only refusal, as the stock module words it.
pub const INVITE_ONLY_TEXT: &str = "Registration on this server is through invitation only";

/// Seconds a claim on a single-use token outlives its holder's silence. Streams release their
/// claims when they close; this only frees tokens whose holder vanished without a trace (a web
/// registration whose account creation failed). Unauthenticated streams are closed long before.
pub const CLAIM_LEASE: i64 = 900;

/// Default number of failed pre-auth attempts an address may make within the window.
pub const DEFAULT_MAX_FAILURES: u32 = 10;

/// Default window, in seconds, over which failed pre-auth attempts are counted.
pub const DEFAULT_FAILURE_WINDOW: i64 = 600;

/// Networks kept in the throttle at most; the least recently failing is forgotten first beyond
/// this.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// Default prefix length IPv6 addresses are counted by: a /64 is what one customer gets, and a
/// client can rotate through all of it (`invites_preauth_ipv6_prefix`).
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// An XMPP stanza error to send back: RFC 6120 type, defined condition and human text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StanzaError {
    /// `cancel`, `modify`, `wait`, `auth`.
    pub kind: &'static str,
    /// A defined condition of `urn:ietf:params:xml:ns:xmpp-stanzas`.
    pub condition: &'static str,
    /// The `<text/>` shown to the user.
    pub text: &'static str,
}

impl StanzaError {
    const fn new(kind: &'static str, condition: &'static str, text: &'static str) -> Self {
        Self { kind, condition, text }
    }
}

/// Whether a stream gets the `urn:xmpp:invite` and `urn:xmpp:ibr-token:0` features: only
/// unauthenticated client streams, and only encrypted ones unless encryption is not required.
pub fn advertise_features(session_type: &str, secure: bool, require_encryption: bool) -> bool {
    session_type == "c2s_unauthed" && (secure || !require_encryption)
}

// ---------------------------------------------------------------------------------------------
// Pre-auth iq (XEP-0445) and the per-address throttle

/// What to do with a pre-auth iq before the token is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreauthStep {
    /// Look the token up; the answer goes to [`PreauthGate::lookup_failed`] if it fails.
    Lookup,
    /// Answer with this error without looking anything up.
    Refuse {
        /// The error to send.
        error: StanzaError,
        /// Why, for the log.
        reason: &'static str,
        /// Whether this counts as a failed attempt of the address.
        counts: bool,
    },
}

/// IP networks (`a.b.c.d`, `::1`, `10.0.0.0/8`, `fd00::/8`) exempt from the throttle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions {
    nets: Vec<(IpAddr, u8)>,
}

impl Exemptions {
    /// Parses the configured list; returns the entries it could not understand as well.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> (Self, Vec<&'a str>) {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for entry in entries {
            match parse_net(entry.trim()) {
                Some(net) => nets.push(net),
                None => bad.push(entry),
            }
        }
        (Self { nets }, bad)
    }

    /// Whether `ip` lies in one of the networks. Unparseable addresses are never exempt.
    pub fn contains(&self, ip: &str) -> bool {
        let Some(ip) = parse_ip(ip) else { return false };
        self.nets.iter().any(|&(net, bits)| in_net(ip, net, bits))
    }
}

/// Parses an address, seeing IPv4-mapped IPv6 addresses as the IPv4 address they carry.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let ip: IpAddr = text.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// The throttle's key for an address: an IPv4 address itself (IPv4-mapped IPv6 included), an
/// IPv6 address's network of `ipv6_prefix` bits, or unparseable text as it is.
fn network_key(ip: &str, ipv6_prefix: u8) -> String {
    match parse_ip(ip) {
        Some(IpAddr::V6(v6)) => {
            let bits = ipv6_prefix.min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            format!("{}/{bits}", Ipv6Addr::from(u128::from(v6) & mask))
        }
        Some(v4) => v4.to_string(),
        None => ip.to_owned(),
    }
}

fn parse_net(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match text.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let ip = parse_ip(addr)?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    fn prefix_eq(a: u128, b: u128, width: u32, bits: u8) -> bool {
        let bits = u32::from(bits);
        if bits == 0 {
            return true;
        }
        let shift = width - bits;
        (a >> shift) == (b >> shift)
    }
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => prefix_eq(u128::from(u32::from(a)), u128::from(u32::from(b)), 32, bits),
        (IpAddr::V6(a), IpAddr::V6(b)) => prefix_eq(u128::from(a), u128::from(b), 128, bits),
        _ => false,
    }
}

/// Throttle settings: at most `max_failures` failed attempts per address within `window`
/// seconds (0 failures: no throttle), except for exempt addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed attempts allowed within the window; the next attempt is refused.
    pub max_failures: u32,
    /// Seconds over which failures are counted.
    pub window: i64,
    /// Addresses never throttled (by default loopback, like Prosody's registration limits).
    pub exempt: Exemptions,
    /// IPv6 addresses are counted per network of this prefix length (IPv4 per address).
    pub ipv6_prefix: u8,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        let (exempt, _) = Exemptions::parse(["127.0.0.1", "::1"]);
        Self { max_failures: DEFAULT_MAX_FAILURES, window: DEFAULT_FAILURE_WINDOW, exempt, ipv6_prefix: DEFAULT_IPV6_PREFIX }
    }
}

/// The failures of one network, and when it last failed in the least-recently-used order.
#[derive(Debug, Clone, Default)]
struct Tracked {
    /// Times of the latest failures, oldest first, at most `max_failures` kept.
    times: VecDeque<i64>,
    /// Its key in [`PreauthGate::order`].
    stamp: u64,
}

/// The pre-auth gate of one host: answers pre-auth iqs and throttles addresses that keep
/// presenting bad tokens. Tokens carry 144 bits, so guessing is hopeless anyway; the throttle
/// keeps the log and storage quiet and makes scanning visible.
#[derive(Debug, Clone, Default)]
pub struct PreauthGate {
    config: ThrottleConfig,
    /// Failures per network (an IPv4 address, an IPv6 prefix).
    failures: HashMap<String, Tracked>,
    /// Networks by the stamp of their latest failure: the first is the least recently used.
    order: BTreeMap<u64, String>,
    /// The next stamp.
    clock: u64,
}

impl PreauthGate {
    /// A gate with these settings.
    pub fn new(config: ThrottleConfig) -> Self {
        Self { config, failures: HashMap::new(), order: BTreeMap::new(), clock: 0 }
    }

    fn tracked(&self, ip: Option<&str>) -> Option<String> {
        let ip = ip?;
        if self.config.max_failures == 0 || self.config.exempt.contains(ip) {
            return None;
        }
        Some(network_key(ip, self.config.ipv6_prefix))
    }

    /// Whether `ip` is throttled at `now`.
    pub fn throttled(&self, ip: Option<&str>, now: i64) -> bool {
        let Some(key) = self.tracked(ip) else { return false };
        self.failures.get(&key).is_some_and(|tracked| self.full(&tracked.times, now))
    }

    fn full(&self, times: &VecDeque<i64>, now: i64) -> bool {
        let max = usize::try_from(self.config.max_failures).unwrap_or(usize::MAX);
        times.len() >= max && times.front().is_some_and(|&oldest| now.saturating_sub(oldest) < self.config.window)
    }

    /// Decides what to do with a pre-auth iq of type `iq_type` carrying `token` (the `token`
    /// attribute, `None` when absent) from `ip`.
    pub fn check(&self, ip: Option<&str>, iq_type: &str, token: Option<&str>, now: i64) -> PreauthStep {
        if iq_type != "set" {
            // XEP-0445 defines only `set`; a `get` is a malformed request, not a guess.
            let error = StanzaError::new("modify", "bad-request", "The pre-auth request must be of type 'set'");
            return PreauthStep::Refuse { error, reason: "not an iq of type set", counts: false };
        }
        if self.throttled(ip, now) {
            let error = StanzaError::new("wait", "policy-violation", "Too many failed invite attempts, try again later");
            return PreauthStep::Refuse { error, reason: "address throttled", counts: true };
        }
        match token {
            None => {
                let error = StanzaError::new("modify", "bad-request", "The pre-auth request carries no token");
                PreauthStep::Refuse { error, reason: "no token", counts: true }
            }
            Some(token) if check_token(token).is_err() => {
                let error = StanzaError::new("cancel", "item-not-found", INVALID_TOKEN_TEXT);
                PreauthStep::Refuse { error, reason: "malformed token", counts: true }
            }
            Some(_) => PreauthStep::Lookup,
        }
    }

    /// The answer to a lookup that failed with `code` (mod_invites' `get` error), and whether
    /// it counts as a failed attempt. Storage trouble is the server's fault, not the client's.
    pub fn lookup_failed(code: &str) -> (StanzaError, bool) {
        match code {
            "no-token" | "token-invalid" | "token-expired" => {
                (StanzaError::new("cancel", "item-not-found", INVALID_TOKEN_TEXT), true)
            }
            _ => (StanzaError::new("wait", "internal-server-error", "The invite could not be checked, try again later"), false),
        }
    }

    /// Records a failed attempt from `ip`; returns true when this failure throttles its network.
    /// At the cap, the network that failed least recently is forgotten (no scan).
    pub fn record_failure(&mut self, ip: Option<&str>, now: i64) -> bool {
        let Some(key) = self.tracked(ip) else { return false };
        let window = self.config.window;
        if !self.failures.contains_key(&key) && self.failures.len() >= MAX_TRACKED_ADDRESSES {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.failures.remove(&oldest);
            }
        }
        let was_full = self.failures.get(&key).is_some_and(|tracked| self.full(&tracked.times, now));
        let max = usize::try_from(self.config.max_failures).unwrap_or(usize::MAX);
        let stamp = self.clock;
        self.clock = self.clock.wrapping_add(1);
        let tracked = self.failures.entry(key.clone()).or_insert_with(|| Tracked { times: VecDeque::new(), stamp });
        self.order.remove(&tracked.stamp);
        tracked.stamp = stamp;
        self.order.insert(stamp, key.clone());
        let times = &mut tracked.times;
        while times.front().is_some_and(|&t| now.saturating_sub(t) >= window) {
            times.pop_front();
        }
        times.push_back(now);
        while times.len() > max {
            times.pop_front();
        }
        let full = times.len() >= max;
        if full && !was_full {
            info!("network {key} throttled after {max} failed invite attempts");
        }
        full && !was_full
    }

    /// Drops networks whose failures all lie outside the window.
    pub fn forget_stale(&mut self, now: i64) {
        let window = self.config.window;
        let order = &mut self.order;
        self.failures.retain(|_, tracked| {
            let keep = tracked.times.back().is_some_and(|&t| now.saturating_sub(t) < window);
            if !keep {
                order.remove(&tracked.stamp);
            }
            keep
        });
    }

    /// Number of addresses with failures on record.
    pub fn tracked_addresses(&self) -> usize {
        self.failures.len()
    }
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
    /// `additional_data.max_uses` with the uses recorded so far: `(N, used)`. Without it a
    /// single-use invite allows one registration and a reusable one any number.
    pub limit: Option<(u32, u32)>,
    /// Whether the host-level record is still in storage now. It is deleted when the invite is
    /// used (here, by `prosodyctl`, by a web registration) or revoked.
    pub still_stored: bool,
    /// Whether storage failed when asked if the record is still stored (then `still_stored`
    /// means nothing and the registration must wait).
    pub storage_failed: bool,
}

impl PresentedInvite<'_> {
    /// How many more registrations may claim it at once: `None` for no limit.
    pub fn slots(&self) -> Option<u32> {
        match self.limit {
            Some((max_uses, used)) => Some(max_uses.saturating_sub(used)),
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

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Invite-only server, no invite.
    InviteOnly,
    /// The invite was used or revoked after the stream pre-authenticated with it.
    InviteGone,
    /// A restricted invite presented with another username.
    WrongUsername,
    /// A reset invite whose account does not exist: it never creates one.
    NoAccountToReset,
    /// The username is reserved by another pending invite.
    Reserved,
    /// The account exists and the invite is not a reset invite for it.
    AccountExists,
    /// Another registration holds the claim on this single-use invite.
    InUse,
    /// Whether the username is reserved could not be told (storage failed).
    ReservationUnknown,
    /// Whether the invite is still valid could not be told (storage failed).
    InviteUnknown,
}

impl Refusal {
    /// The error the registration is answered with.
    pub fn error(&self) -> StanzaError {
        match self {
            Self::InviteOnly => StanzaError::new("modify", "not-acceptable", INVITE_ONLY_TEXT),
            Self::InviteGone => StanzaError::new("cancel", "not-allowed", INVALID_TOKEN_TEXT),
            Self::WrongUsername => StanzaError::new("modify", "not-acceptable", "This invite is for a different username"),
            Self::NoAccountToReset => {
                StanzaError::new("cancel", "item-not-found", "This invite resets the password of an account that does not exist")
            }
            Self::Reserved => StanzaError::new("cancel", "conflict", "The requested username is reserved"),
            Self::AccountExists => StanzaError::new("cancel", "conflict", "The requested username already exists."),
            Self::InUse => StanzaError::new("cancel", "not-allowed", "This invite is already being used by another registration"),
            Self::ReservationUnknown => {
                StanzaError::new("wait", "internal-server-error", "The username could not be checked, please try again later")
            }
            Self::InviteUnknown => {
                StanzaError::new("wait", "internal-server-error", "The invite could not be checked, please try again later")
            }
        }
    }

    /// A short reason for the log.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InviteOnly => "no invite on an invite-only host",
            Self::InviteGone => "invite used or revoked since pre-auth",
            Self::WrongUsername => "invite restricted to another username",
            Self::NoAccountToReset => "reset invite for a missing account",
            Self::Reserved => "username reserved by a pending invite",
            Self::AccountExists => "account exists and the invite does not reset it",
            Self::InUse => "invite claimed by another registration",
            Self::ReservationUnknown => "reservations could not be read",
            Self::InviteUnknown => "the invite could not be read",
        }
    }
}

/// A registration that may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// `event.allow_reset`: the account whose password may be reset instead of creating one.
    pub allow_reset: Option<String>,
    /// The claim the registering party must take before going ahead (limited invites).
    pub claim: Option<Claim>,
}

/// A claim to take on a limited invite: one of at most `slots` registrations on their way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub token: String,
    pub slots: u32,
}

/// Decides a registration. Expiry is deliberately not looked at: XEP-0445 checks it at pre-auth
/// only, and a stream that pre-authenticated in time may finish registering.
pub fn decide_registration(r: &Registering<'_>) -> Result<Allowed, Refusal> {
    let Some(invite) = &r.invite else {
        if r.invite_only {
            return Err(Refusal::InviteOnly);
        }
        return match r.reservation {
            Reservation::Free => Ok(Allowed { allow_reset: None, claim: None }),
            Reservation::By(_) => Err(Refusal::Reserved),
            Reservation::Unknown => Err(Refusal::ReservationUnknown),
        };
    };
    if invite.storage_failed {
        return Err(Refusal::InviteUnknown);
    }
    if !invite.still_stored || invite.slots() == Some(0) {
        return Err(Refusal::InviteGone);
    }
    let claim = invite.slots().map(|slots| Claim { token: invite.token.to_owned(), slots });
    if let Some(account) = invite.allow_reset {
        if r.username != account {
            return Err(Refusal::WrongUsername);
        }
        if !r.account_exists {
            return Err(Refusal::NoAccountToReset);
        }
        return Ok(Allowed { allow_reset: Some(account.to_owned()), claim });
    }
    if invite.restricted_to().is_some_and(|name| name != r.username) {
        return Err(Refusal::WrongUsername);
    }
    match r.reservation {
        Reservation::By(token) if token != invite.token => return Err(Refusal::Reserved),
        Reservation::Unknown => return Err(Refusal::ReservationUnknown),
        _ => {}
    }
    if r.account_exists {
        return Err(Refusal::AccountExists);
    }
    Ok(Allowed { allow_reset: None, claim })
}

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

    /// The token of the earliest-expiring pending invite that reserves `username`, each
    /// candidate confirmed against its stored record as `read` returns it (`None`: gone). A
    /// failed read ends the lookup with its error and forgets nothing.
    pub fn reserved_by<E>(
        &mut self,
        username: &str,
        now: i64,
        mut read: impl FnMut(&str) -> Result<Option<ReservationEntry>, E>,
    ) -> Result<Option<String>, E> {
        let Some(held) = self.by_name.get(username) else { return Ok(None) };
        let candidates: Vec<String> = held.iter().map(|(_, token)| token.clone()).collect();
        for token in candidates {
            match read(&token)? {
                Some(entry) if entry.token == token && entry.reserves(now) == Some(username) => return Ok(Some(token)),
                _ => {
                    debug!("invite {} no longer reserves {username}", redact(&token));
                    self.remove(&token);
                }
            }
        }
        Ok(None)
    }
}

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
    pub fn claim(&mut self, claim: &Claim, holder: Holder, now: i64) -> Result<(), Refusal> {
        let held = self.by_token.entry(claim.token.clone()).or_default();
        held.retain(|h| h.spent || (h.holder != holder && now.saturating_sub(h.since) < CLAIM_LEASE));
        if held.len() >= usize::try_from(claim.slots).unwrap_or(usize::MAX) {
            debug!("token {} is claimed by {} other registrations", redact(&claim.token), held.len());
            return Err(Refusal::InUse);
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

/// What a finished registration leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// Consume the invite (delete its storage keys).
    pub consume: bool,
    /// Make the new account and this inviter mutually subscribed, and push the new contact to
    /// the inviter.
    pub befriend: Option<String>,
    /// Roles to store for the new account.
    pub roles: Vec<String>,
}

/// Plans `user-registered` for an invite registration that settled as `settlement`. `inviter`
/// is the validated invite's inviter (contact invites), `inviter_exists` whether that account is
/// still there, `still_stored` the storage re-check (for unclaimed single-use invites), `limit`
/// the invite's use limit and the uses recorded before this one: the invite is consumed when
/// this use is its last.
pub fn welcome(
    settlement: Settlement,
    new_user: &str,
    inviter: Option<&str>,
    inviter_exists: bool,
    still_stored: bool,
    limit: Option<(u32, u32)>,
    roles: Vec<String>,
) -> Option<Welcome> {
    match settlement {
        Settlement::Claimed => {}
        Settlement::Unclaimed if still_stored => {}
        Settlement::Unclaimed | Settlement::HeldByOther => return None,
    }
    let befriend = inviter.filter(|&inviter| inviter_exists && inviter != new_user).map(str::to_owned);
    let consume = limit.is_none_or(|(max_uses, used)| used.saturating_add(1) >= max_uses);
    Some(Welcome { consume, befriend, roles })
}

/// One entry of an invite's `additional_data.roles`, which comes as a map (`{role = true}`, what
/// the stock command line writes) or as an array (`{"role"}`, what later versions write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleEntry {
    /// `roles[i] = "name"`.
    Listed(String),
    /// `roles.name = flag`.
    Keyed(String, bool),
}

/// The role names to grant, without duplicates: listed entries in their order (Prosody 13 takes
/// the first as the primary role), then keyed ones sorted by name.
pub fn role_names(entries: impl IntoIterator<Item = RoleEntry>) -> Vec<String> {
    let mut listed = Vec::new();
    let mut keyed = Vec::new();
    for entry in entries {
        match entry {
            RoleEntry::Listed(name) => listed.push(name),
            RoleEntry::Keyed(name, true) => keyed.push(name),
            RoleEntry::Keyed(_, false) => {}
        }
    }
    keyed.sort();
    let mut names: Vec<String> = Vec::with_capacity(listed.len() + keyed.len());
    for name in listed.into_iter().chain(keyed) {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

// ---------------------------------------------------------------------------------------------
// XEP-0379

/// The token of a `presence` that asks for server-side pre-authenticated subscription: a
/// `subscribe` from someone else carrying a `preauth` token. Anything else is left alone.
pub fn contact_token<'a>(presence_type: Option<&str>, token: Option<&'a str>, from_bare: &str, to_bare: &str) -> Option<&'a str> {
    if presence_type != Some("subscribe") || from_bare.is_empty() || from_bare == to_bare {
        return None;
    }
    token.filter(|token| check_token(token).is_ok())
}

/// Whether the inviter should send its own `subscribe` back after approving: unless it is
/// already subscribed to the contact or has asked already.
pub fn subscribe_back(inviter_subscribed: bool, inviter_pending_out: bool) -> bool {
    !inviter_subscribed && !inviter_pending_out
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

    fn gate(max: u32, window: i64, exempt: &[&str]) -> PreauthGate {
        let (exempt, bad) = Exemptions::parse(exempt.iter().copied());
        assert!(bad.is_empty());
        PreauthGate::new(ThrottleConfig { max_failures: max, window, exempt, ipv6_prefix: DEFAULT_IPV6_PREFIX })
    }

    fn condition(step: &PreauthStep) -> Option<&'static str> {
        match step {
            PreauthStep::Lookup => None,
            PreauthStep::Refuse { error, .. } => Some(error.condition),
        }
    }

    #[test]
    fn preauth_requests() {
        let g = gate(3, 60, &[]);
        let long = "a".repeat(10_000);
        let cases: [(&str, Option<&str>, Option<&str>); 7] = [
            ("set", Some(T), None),
            ("get", Some(T), Some("bad-request")),
            ("set", None, Some("bad-request")),
            ("set", Some(""), Some("item-not-found")),
            ("set", Some(long.as_str()), Some("item-not-found")),
            ("set", Some("tökén"), Some("item-not-found")),
            ("set", Some("a;b=c"), Some("item-not-found")),
        ];
        for (iq_type, token, expected) in cases {
            assert_eq!(condition(&g.check(Some("192.0.2.1"), iq_type, token, 0)), expected, "{iq_type} {token:?}");
        }
        let (error, counts) = PreauthGate::lookup_failed("token-expired");
        assert_eq!((error.kind, error.condition, error.text, counts), ("cancel", "item-not-found", INVALID_TOKEN_TEXT, true));
        assert_eq!(PreauthGate::lookup_failed("token-invalid").0.condition, "item-not-found");
        assert_eq!(PreauthGate::lookup_failed("no-token").0.condition, "item-not-found");
        let (error, counts) = PreauthGate::lookup_failed("internal-server-error");
        assert_eq!((error.condition, counts), ("internal-server-error", false));
    }

    #[test]
    fn get_requests_do_not_count_as_failures() {
        match gate(3, 60, &[]).check(Some("192.0.2.1"), "get", Some(T), 0) {
            PreauthStep::Refuse { counts, .. } => assert!(!counts),
            PreauthStep::Lookup => panic!("a get must be refused"),
        }
    }

    #[test]
    fn throttle_after_max_failures_within_the_window() {
        let mut g = gate(3, 60, &[]);
        let ip = Some("192.0.2.1");
        // (time, record a failure?, throttled afterwards, newly throttled)
        let steps = [
            (0, true, false, false),
            (10, true, false, false),
            (20, true, true, true),
            (30, true, true, false), // hammering while throttled keeps it throttled
            (69, false, true, false),
            (70, false, false, false), // the failure at 10 left the window: two remain
        ];
        for (now, fail, throttled, newly) in steps {
            let got = if fail { g.record_failure(ip, now) } else { false };
            assert_eq!(got, newly, "newly at {now}");
            assert_eq!(g.throttled(ip, now), throttled, "throttled at {now}");
        }
        assert!(
            matches!(g.check(Some("192.0.2.1"), "set", Some(T), 30), PreauthStep::Refuse { error, .. } if error.condition == "policy-violation")
        );
        assert_eq!(g.check(Some("192.0.2.2"), "set", Some(T), 30), PreauthStep::Lookup, "other addresses are not affected");
    }

    #[test]
    fn throttle_forgets_old_failures() {
        let mut g = gate(2, 60, &[]);
        let ip = Some("192.0.2.1");
        assert!(!g.record_failure(ip, 0));
        assert!(!g.record_failure(ip, 61), "the first failure left the window");
        assert!(g.record_failure(ip, 62));
        g.forget_stale(200);
        assert_eq!(g.tracked_addresses(), 0);
        assert!(!g.throttled(ip, 200));
    }

    #[test]
    fn exempt_and_unthrottled_addresses() {
        let mut g = gate(1, 60, &["127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8"]);
        for ip in ["127.0.0.1", "::1", "10.1.2.3", "::ffff:10.9.9.9", "fd12::1"] {
            g.record_failure(Some(ip), 0);
            assert!(!g.throttled(Some(ip), 0), "{ip}");
        }
        for ip in ["11.0.0.1", "fe80::1", "127.0.0.2"] {
            assert!(g.record_failure(Some(ip), 0), "{ip}");
            assert!(g.throttled(Some(ip), 0), "{ip}");
        }
        // Two spellings of one address share a counter.
        let mut g = gate(2, 60, &[]);
        g.record_failure(Some("192.0.2.7"), 0);
        assert!(g.record_failure(Some("::ffff:192.0.2.7"), 0));
        // No address known, or no throttle configured: never throttled.
        assert!(!gate(1, 60, &[]).record_failure(None, 0));
        let mut off = gate(0, 60, &[]);
        assert!(!off.record_failure(Some("192.0.2.1"), 0));
        assert!(!off.throttled(Some("192.0.2.1"), 0));
    }

    #[test]
    fn exemption_lists_parse_cidr() {
        let (list, bad) = Exemptions::parse(["192.168.0.0/16", " ::1 ", "nonsense", "10.0.0.0/33", "::/0"]);
        assert_eq!(bad, vec!["nonsense", "10.0.0.0/33"]);
        assert!(list.contains("192.168.200.1"));
        assert!(!list.contains("192.169.0.1"));
        assert!(list.contains("2001:db8::1"), "::/0 covers all of IPv6");
        assert!(!list.contains("not an ip"));
        let (all_v4, _) = Exemptions::parse(["0.0.0.0/0"]);
        assert!(all_v4.contains("203.0.113.9"));
        assert!(!all_v4.contains("2001:db8::1"));
    }

    #[test]
    fn ipv6_is_counted_per_prefix_and_ipv4_per_address() {
        let mut g = gate(2, 60, &[]);
        g.record_failure(Some("2001:db8:1:2::1"), 0);
        assert!(g.record_failure(Some("2001:db8:1:2:ffff:ffff:ffff:ffff"), 0), "same /64");
        assert!(g.throttled(Some("2001:db8:1:2::abcd"), 0));
        assert!(!g.throttled(Some("2001:db8:1:3::1"), 0), "the next /64");
        g.record_failure(Some("192.0.2.1"), 0);
        assert!(!g.record_failure(Some("192.0.2.2"), 0), "IPv4 per address");
        assert!(!g.throttled(Some("192.0.2.3"), 0));
        // IPv4-mapped addresses are IPv4.
        assert!(g.record_failure(Some("::ffff:192.0.2.1"), 0));

        let per_address = |prefix| {
            let config = ThrottleConfig { max_failures: 2, window: 60, exempt: Exemptions::default(), ipv6_prefix: prefix };
            PreauthGate::new(config)
        };
        let mut g = per_address(128);
        g.record_failure(Some("2001:db8::1"), 0);
        assert!(!g.record_failure(Some("2001:db8::2"), 0), "/128: per address");
        let mut g = per_address(48);
        g.record_failure(Some("2001:db8:1:2::1"), 0);
        assert!(g.record_failure(Some("2001:db8:1:ffff::1"), 0), "/48");
        let mut g = per_address(200);
        g.record_failure(Some("2001:db8::1"), 0);
        assert!(!g.record_failure(Some("2001:db8::2"), 0), "beyond 128 means 128");
        assert_eq!(network_key("2001:db8::1", 0), "::/0");
        assert_eq!(network_key("not an address", 64), "not an address");
    }

    #[test]
    fn the_least_recently_failing_network_is_forgotten_at_the_cap() {
        let mut g = gate(5, 1_000_000, &[]);
        let ip = |i: usize| format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
        for i in 0..MAX_TRACKED_ADDRESSES {
            g.record_failure(Some(&ip(i)), 0);
        }
        // All failed at the same second: recency, not time, decides. 0 failed again lately.
        g.record_failure(Some(&ip(0)), 0);
        g.record_failure(Some("192.0.2.1"), 0);
        assert_eq!(g.tracked_addresses(), MAX_TRACKED_ADDRESSES);
        assert!(g.failures.contains_key(&ip(0)), "used recently: kept");
        assert!(!g.failures.contains_key(&ip(1)), "least recently used: forgotten");
        assert_eq!(g.order.len(), g.failures.len());
        g.forget_stale(10_000_000);
        assert_eq!((g.tracked_addresses(), g.order.len()), (0, 0));
    }

    #[test]
    fn new_networks_at_the_cap_cost_no_scan() {
        // 50 000 new networks past the cap: a scan of the table each would take minutes here.
        let mut g = gate(5, 1_000_000, &[]);
        let started = std::time::Instant::now();
        for i in 0..(MAX_TRACKED_ADDRESSES + 50_000) {
            let ip = format!("2001:db8:{:x}:{:x}::1", i >> 16, i & 0xffff);
            g.record_failure(Some(&ip), 0);
        }
        assert_eq!(g.tracked_addresses(), MAX_TRACKED_ADDRESSES);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn throttle_memory_is_bounded() {
        let mut g = gate(5, 60, &[]);
        for i in 0..(MAX_TRACKED_ADDRESSES + 50) {
            let ip = format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
            g.record_failure(Some(&ip), i64::try_from(i).unwrap());
        }
        assert!(g.tracked_addresses() <= MAX_TRACKED_ADDRESSES);
    }

    fn invite(kind: InviteType, jid: &'static str) -> PresentedInvite<'static> {
        PresentedInvite {
            token: T,
            kind,
            jid: Some(jid),
            username: node_of(jid),
            allow_reset: None,
            reusable: false,
            limit: None,
            still_stored: true,
            storage_failed: false,
        }
    }

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
        let gone = PresentedInvite { still_stored: false, ..open.clone() };
        let unreadable = PresentedInvite { still_stored: false, storage_failed: true, ..open.clone() };
        let ok = |claim: Option<Claim>| Ok(Allowed { allow_reset: None, claim });

        let cases: Vec<(&str, Registering<'static>, Result<Allowed, Refusal>)> = vec![
            ("invite-only, no invite", registering("mallory", None), Err(Refusal::InviteOnly)),
            ("open, no invite", Registering { invite_only: false, ..registering("mallory", None) }, ok(None)),
            (
                "open, no invite, reserved name",
                Registering { invite_only: false, reservation: Reservation::By(U), ..registering("bob", None) },
                Err(Refusal::Reserved),
            ),
            (
                "open, no invite, reservations unreadable",
                Registering { invite_only: false, reservation: Reservation::Unknown, ..registering("bob", None) },
                Err(Refusal::ReservationUnknown),
            ),
            (
                "invite, reservations unreadable",
                Registering { reservation: Reservation::Unknown, ..registering("bob", Some(open.clone())) },
                Err(Refusal::ReservationUnknown),
            ),
            ("open invite, any name", registering("mallory", Some(open.clone())), ok(claim())),
            (
                "open invite, invite-only off",
                Registering { invite_only: false, ..registering("x", Some(open.clone())) },
                ok(claim()),
            ),
            ("restricted invite, its name", registering("bob", Some(for_bob.clone())), ok(claim())),
            ("restricted invite, other name (B4)", registering("mallory", Some(for_bob.clone())), Err(Refusal::WrongUsername)),
            (
                "restricted invite reserves its own name",
                Registering { reservation: Reservation::By(T), ..registering("bob", Some(for_bob.clone())) },
                ok(claim()),
            ),
            (
                "another invite cannot take a reserved name",
                Registering { reservation: Reservation::By(U), ..registering("bob", Some(open.clone())) },
                Err(Refusal::Reserved),
            ),
            (
                "restricted invite, account taken meanwhile",
                Registering { account_exists: true, ..registering("bob", Some(for_bob.clone())) },
                Err(Refusal::AccountExists),
            ),
            ("contact invite registers any name", registering("dave", Some(contact.clone())), ok(claim())),
            (
                "reset invite resets its account",
                Registering { account_exists: true, ..registering("carol", Some(reset.clone())) },
                Ok(Allowed { allow_reset: Some("carol".into()), claim: claim() }),
            ),
            ("reset invite never creates (B3)", registering("mallory", Some(reset.clone())), Err(Refusal::WrongUsername)),
            (
                "reset invite for another existing account",
                Registering { account_exists: true, ..registering("alice", Some(reset.clone())) },
                Err(Refusal::WrongUsername),
            ),
            ("reset invite, its account was deleted", registering("carol", Some(reset.clone())), Err(Refusal::NoAccountToReset)),
            ("used since pre-auth (B5)", registering("x", Some(gone.clone())), Err(Refusal::InviteGone)),
            (
                "used since pre-auth, open host",
                Registering { invite_only: false, ..registering("x", Some(gone)) },
                Err(Refusal::InviteGone),
            ),
            ("reusable invite needs no claim", registering("x", Some(group)), ok(None)),
            ("storage failed: wait, not gone", registering("x", Some(unreadable)), Err(Refusal::InviteUnknown)),
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
    fn every_refusal_has_an_error() {
        let all = [
            Refusal::InviteOnly,
            Refusal::InviteGone,
            Refusal::WrongUsername,
            Refusal::NoAccountToReset,
            Refusal::Reserved,
            Refusal::AccountExists,
            Refusal::InUse,
            Refusal::ReservationUnknown,
            Refusal::InviteUnknown,
        ];
        for refusal in all {
            let e = refusal.error();
            assert!(["cancel", "modify", "wait", "auth"].contains(&e.kind));
            assert!(!e.text.is_empty() && !refusal.reason().is_empty());
        }
        assert_eq!(Refusal::InviteOnly.error().text, "Registration on this server is through invitation only");
    }

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

    fn one(token: &str) -> Claim {
        Claim { token: token.to_owned(), slots: 1 }
    }

    #[test]
    fn claims_let_as_many_holders_through_as_there_are_uses_left() {
        let mut claims = Claims::new();
        let two = Claim { token: T.to_owned(), slots: 2 };
        assert_eq!(claims.claim(&two, 1, 0), Ok(()));
        assert_eq!(claims.claim(&two, 2, 0), Ok(()));
        assert_eq!(claims.claim(&two, 3, 0), Err(Refusal::InUse));
        assert_eq!(claims.claim(&two, 2, 1), Ok(()), "a holder may retry");
        assert_eq!(claims.len(), 2);
        assert_eq!(claims.settle(T, Some(1)), Settlement::Claimed);
        claims.consumed(T, true, 1);
        // One use recorded: one slot left, held by holder 2.
        let one_left = Claim { token: T.to_owned(), slots: 1 };
        assert_eq!(claims.claim(&one_left, 3, 2), Err(Refusal::InUse));
        assert_eq!(claims.release(2), 1);
        assert_eq!(claims.claim(&one_left, 3, 2), Ok(()));
    }

    #[test]
    fn claims_let_exactly_one_holder_through() {
        let mut claims = Claims::new();
        assert_eq!(claims.claim(&one(T), 1, 0), Ok(()));
        assert_eq!(claims.claim(&one(T), 2, 1), Err(Refusal::InUse));
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
        assert_eq!(claims.claim(&one(T), 2, 2), Err(Refusal::InUse));
        assert_eq!(claims.claim(&one(T), 1, 2), Err(Refusal::InUse), "not twice on the holder's stream");
        assert_eq!(claims.release(1), 0, "the stream ends: the consume is still owed");
        claims.expire(CLAIM_LEASE * 10);
        assert_eq!(claims.claim(&one(T), 2, CLAIM_LEASE * 10), Err(Refusal::InUse), "no lease for a spent claim");
        assert_eq!(claims.unsettled(), vec![T.to_owned()]);
        claims.consumed(T, true, 3);
        assert!(claims.is_empty() && claims.unsettled().is_empty());
        // An unclaimed registration whose consume failed is held as well.
        claims.consumed(U, false, 4);
        assert_eq!(claims.claim(&one(U), 5, 5), Err(Refusal::InUse));
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
        assert_eq!(claims.claim(&one(U), 4, 100 + CLAIM_LEASE - 1), Err(Refusal::InUse));
        assert_eq!(claims.claim(&one(U), 4, 100 + CLAIM_LEASE), Ok(()), "a silent holder loses it after the lease");
        claims.expire(5 + CLAIM_LEASE);
        assert_eq!(claims.len(), 1);
    }

    #[test]
    fn welcome_plans() {
        let roles = vec!["prosody:admin".to_owned()];
        let cases = [
            (Settlement::Claimed, Some("alice"), true, false, Some(Some("alice"))),
            (Settlement::Claimed, None, true, false, Some(None)),
            (Settlement::Claimed, Some("alice"), false, true, Some(None)),
            (Settlement::Claimed, Some("dave"), true, true, Some(None)),
            (Settlement::Unclaimed, Some("alice"), true, true, Some(Some("alice"))),
            (Settlement::Unclaimed, Some("alice"), true, false, None),
            (Settlement::HeldByOther, Some("alice"), true, true, None),
        ];
        for (settlement, inviter, exists, stored, expected) in cases {
            let plan = welcome(settlement, "dave", inviter, exists, stored, None, roles.clone());
            assert_eq!(plan.as_ref().map(|w| w.befriend.as_deref()), expected, "{settlement:?} {inviter:?}");
            if let Some(plan) = plan {
                assert!(plan.consume);
                assert_eq!(plan.roles, roles);
            }
        }
        // A limited invite is consumed by its last use only.
        let consumed = |limit| welcome(Settlement::Claimed, "dave", None, false, true, limit, vec![]).map(|w| w.consume);
        assert_eq!(consumed(Some((3, 0))), Some(false));
        assert_eq!(consumed(Some((3, 1))), Some(false));
        assert_eq!(consumed(Some((3, 2))), Some(true));
        assert_eq!(consumed(Some((1, 0))), Some(true));
    }

    #[test]
    fn limited_invites_register_until_used_up() {
        let limited =
            |max_uses, used| PresentedInvite { limit: Some((max_uses, used)), ..invite(InviteType::Register, "example.com") };
        let allowed = decide_registration(&registering("x", Some(limited(3, 1)))).map(|a| a.claim);
        assert_eq!(allowed, Ok(Some(Claim { token: T.to_owned(), slots: 2 })));
        assert_eq!(decide_registration(&registering("x", Some(limited(3, 3)))), Err(Refusal::InviteGone));
        // A reusable (group) invite with a limit is limited too.
        let group = PresentedInvite { reusable: true, ..limited(5, 4) };
        assert_eq!(decide_registration(&registering("x", Some(group))).map(|a| a.claim.map(|c| c.slots)), Ok(Some(1)));
        let unlimited = PresentedInvite { reusable: true, ..invite(InviteType::Register, "example.com") };
        assert_eq!(decide_registration(&registering("x", Some(unlimited))).map(|a| a.claim), Ok(None));
    }

    #[test]
    fn roles_as_map_or_array() {
        let cases = [
            (vec![RoleEntry::Keyed("prosody:admin".into(), true)], vec!["prosody:admin"]),
            (vec![RoleEntry::Listed("prosody:admin".into()), RoleEntry::Listed("b".into())], vec!["prosody:admin", "b"]),
            (vec![RoleEntry::Keyed("z".into(), true), RoleEntry::Keyed("a".into(), true)], vec!["a", "z"]),
            (vec![RoleEntry::Keyed("off".into(), false), RoleEntry::Keyed("on".into(), true)], vec!["on"]),
            (
                vec![RoleEntry::Listed("x".into()), RoleEntry::Keyed("x".into(), true), RoleEntry::Listed(String::new())],
                vec!["x"],
            ),
            (vec![], vec![]),
        ];
        for (entries, expected) in cases {
            assert_eq!(role_names(entries.clone()), expected, "{entries:?}");
        }
    }

    #[test]
    fn contact_tokens() {
        let cases = [
            (Some("subscribe"), Some(T), "bob@x", "alice@y", Some(T)),
            (Some("subscribed"), Some(T), "bob@x", "alice@y", None),
            (None, Some(T), "bob@x", "alice@y", None),
            (Some("subscribe"), None, "bob@x", "alice@y", None),
            (Some("subscribe"), Some(""), "bob@x", "alice@y", None),
            (Some("subscribe"), Some("x y"), "bob@x", "alice@y", None),
            (Some("subscribe"), Some(T), "alice@y", "alice@y", None),
            (Some("subscribe"), Some(T), "", "alice@y", None),
        ];
        for (kind, token, from, to, expected) in cases {
            assert_eq!(contact_token(kind, token, from, to), expected, "{kind:?} {token:?} {from} {to}");
        }
        assert!(subscribe_back(false, false));
        assert!(!subscribe_back(true, false));
        assert!(!subscribe_back(false, true));
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
