//! The pre-auth iq (XEP-0445) and the per-address throttle of `mod_invites_register`; the
//! network ranges it counts and exempts addresses by are in [`crate::net`].

use std::collections::{BTreeMap, HashMap, VecDeque};

use tracing::info;

use crate::error::Error;
use crate::net::{Exemptions, network_key};
use crate::token::check_token;

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

/// What to do with a pre-auth iq before the token is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreauthStep {
    /// Look the token up; the answer goes to [`PreauthGate::lookup_failed`] if it fails.
    Lookup,
    /// Refuse without looking anything up.
    Refuse {
        /// The refusal (its stanza error and reason: [`Error::stanza_error`], `Display`).
        error: Error,
        /// Whether this counts as a failed attempt of the address.
        counts: bool,
    },
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

impl ThrottleConfig {
    /// Takes the options as configured (any integers; absent ones keep their defaults): negative
    /// counts and windows are 0 (no throttle), a prefix is clamped to 0..=128.
    pub fn with_options(mut self, max_failures: Option<i64>, window: Option<i64>, ipv6_prefix: Option<i64>) -> Self {
        if let Some(max) = max_failures {
            self.max_failures = u32::try_from(max.max(0)).unwrap_or(u32::MAX);
        }
        if let Some(window) = window {
            self.window = window.max(0);
        }
        if let Some(prefix) = ipv6_prefix {
            self.ipv6_prefix = u8::try_from(prefix.clamp(0, 128)).unwrap_or(128);
        }
        self
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
            return PreauthStep::Refuse { error: Error::PreauthNotSet, counts: false };
        }
        if self.throttled(ip, now) {
            return PreauthStep::Refuse { error: Error::Throttled, counts: true };
        }
        match token {
            None => PreauthStep::Refuse { error: Error::PreauthWithoutToken, counts: true },
            Some(token) if check_token(token).is_err() => PreauthStep::Refuse { error: Error::TokenInvalid, counts: true },
            Some(_) => PreauthStep::Lookup,
        }
    }

    /// The refusal for a lookup that failed with `lookup` (mod_invites' `get` error), and whether
    /// it counts as a failed attempt. Storage trouble is the server's fault, not the client's.
    pub fn lookup_failed(lookup: &Error) -> (Error, bool) {
        match lookup {
            Error::NoToken | Error::TokenInvalid | Error::TokenExpired => (Error::TokenInvalid, true),
            _ => (Error::Internal, false),
        }
    }

    /// Records a failed attempt from `ip`; returns true when this failure throttles its network.
    /// At the cap, the network that failed least recently is forgotten (no scan).
    pub fn record_failure(&mut self, ip: Option<&str>, now: i64) -> bool {
        let Some(key) = self.tracked(ip) else { return false };
        let window = self.config.window;
        if !self.failures.contains_key(&key)
            && self.failures.len() >= MAX_TRACKED_ADDRESSES
            && let Some((_, oldest)) = self.order.pop_first()
        {
            self.failures.remove(&oldest);
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

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "Xo3gdOvANs77aUhUX40RFxTZ";

    fn gate(max: u32, window: i64, exempt: &[&str]) -> PreauthGate {
        let (exempt, bad) = Exemptions::parse(exempt.iter().copied());
        assert!(bad.is_empty());
        PreauthGate::new(ThrottleConfig { max_failures: max, window, exempt, ipv6_prefix: DEFAULT_IPV6_PREFIX })
    }

    fn condition(step: &PreauthStep) -> Option<&'static str> {
        match step {
            PreauthStep::Lookup => None,
            PreauthStep::Refuse { error, .. } => Some(error.stanza_error("example.com").condition),
        }
    }

    #[test]
    fn options_are_clamped() {
        let config = ThrottleConfig::default().with_options(Some(-3), Some(-1), Some(500));
        assert_eq!((config.max_failures, config.window, config.ipv6_prefix), (0, 0, 128));
        let config = ThrottleConfig::default().with_options(Some(i64::MAX), None, Some(-1));
        assert_eq!((config.max_failures, config.window, config.ipv6_prefix), (u32::MAX, DEFAULT_FAILURE_WINDOW, 0));
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
        for lookup in [Error::TokenExpired, Error::TokenInvalid, Error::NoToken] {
            assert_eq!(PreauthGate::lookup_failed(&lookup), (Error::TokenInvalid, true), "{lookup:?}");
        }
        assert_eq!(PreauthGate::lookup_failed(&Error::Internal), (Error::Internal, false));
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
            matches!(g.check(Some("192.0.2.1"), "set", Some(T), 30), PreauthStep::Refuse { error, .. } if error == Error::Throttled)
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
}
