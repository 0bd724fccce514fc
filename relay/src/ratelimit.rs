//! Rate limits and budgets: per-principal posts (a token bucket of `per_minute` tokens,
//! refilled continuously; a refused post gets the delay after which one token is back),
//! audited refusals per principal or source prefix ([`RefusalLimiter`]), and handshakes in progress per source
//! prefix and in total ([`HandshakeBudget`]).
//!
//! A source *prefix* is what one network holds: the /24 of an IPv4 address, the /64 of an
//! IPv6 address (one IPv6 host usually holds a whole /64), an IPv4-mapped IPv6 address
//! counting as its IPv4 address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use filet_proto::{Principal, Timestamp};

/// Token buckets by principal.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<Principal, (f64, Timestamp)>>,
}

impl RateLimiter {
    /// A limiter of `per_minute` posts per principal (0: no limit).
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `p` at time `now`.
    ///
    /// # Errors
    /// The number of milliseconds until a token is available.
    pub fn check(&self, p: &Principal, now: Timestamp) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let cap = f64::from(self.per_minute);
        let per_ms = cap / 60_000.0;
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = b.entry(p.clone()).or_insert((cap, now));
        let elapsed = now.ms_since(*last).max(0) as f64;
        *tokens = (*tokens + elapsed * per_ms).min(cap);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_ms).ceil() as u64)
        }
    }
}

/// The network a source address belongs to: its /24 (IPv4) or /64 (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefix {
    /// The first three bytes of an IPv4 address.
    V4([u8; 3]),
    /// The first eight bytes of an IPv6 address.
    V6([u8; 8]),
}

impl Prefix {
    /// The prefix of `ip`.
    pub fn of(ip: IpAddr) -> Prefix {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(a) => {
                let o = a.octets();
                Prefix::V4([o[0], o[1], o[2]])
            }
            IpAddr::V6(a) => {
                let o = a.octets();
                let mut p = [0u8; 8];
                p.copy_from_slice(&o[..8]);
                Prefix::V6(p)
            }
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Prefix::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Prefix::V6(p) => {
                let mut o = [0u8; 16];
                o[..8].copy_from_slice(p);
                write!(f, "{}/64", std::net::Ipv6Addr::from(o))
            }
        }
    }
}

/// Why a handshake could not begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeRefusal {
    /// The relay has its limit of handshakes in progress.
    #[error("{0} handshakes are in progress, the relay's limit")]
    Total(usize),
    /// The source's network has its limit of handshakes in progress.
    #[error("{1} handshakes from {0} are in progress, the limit per network")]
    Prefix(Prefix, usize),
}

/// Handshakes in progress, bounded per source prefix and in total. A handshake holds a
/// [`HandshakeSlot`] from its first (address-validated) packet until it completes, fails
/// or times out; a connection slot is taken only afterwards.
pub struct HandshakeBudget {
    total: usize,
    per_prefix: usize,
    state: Arc<Mutex<BudgetState>>,
}

#[derive(Default)]
struct BudgetState {
    in_progress: usize,
    by_prefix: HashMap<Prefix, usize>,
}

/// One handshake in progress; dropping it gives the slot back.
pub struct HandshakeSlot {
    prefix: Prefix,
    state: Arc<Mutex<BudgetState>>,
}

impl HandshakeBudget {
    /// At most `total` handshakes in progress, `per_prefix` of them from one network.
    pub fn new(total: usize, per_prefix: usize) -> Self {
        HandshakeBudget {
            total: total.max(1),
            per_prefix: per_prefix.max(1),
            state: Arc::new(Mutex::new(BudgetState::default())),
        }
    }

    /// Takes a slot for a handshake from `ip`.
    ///
    /// # Errors
    /// Which limit is reached.
    pub fn begin(&self, ip: IpAddr) -> Result<HandshakeSlot, HandshakeRefusal> {
        let prefix = Prefix::of(ip);
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.in_progress >= self.total {
            return Err(HandshakeRefusal::Total(s.in_progress));
        }
        let n = s.by_prefix.entry(prefix).or_insert(0);
        if *n >= self.per_prefix {
            return Err(HandshakeRefusal::Prefix(prefix, *n));
        }
        *n += 1;
        s.in_progress += 1;
        Ok(HandshakeSlot {
            prefix,
            state: self.state.clone(),
        })
    }

    /// Handshakes in progress now.
    pub fn in_progress(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_progress
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_progress = s.in_progress.saturating_sub(1);
        if let Some(n) = s.by_prefix.get_mut(&self.prefix) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.by_prefix.remove(&self.prefix);
            }
        }
    }
}

/// Who an audited refusal is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Refused {
    /// An identified principal (or the one a certificate names).
    Principal(String),
    /// A source network, before anyone is identified.
    Network(Prefix),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Principal(p) => write!(f, "principal {p}"),
            Refused::Network(n) => write!(f, "network {n}"),
        }
    }
}

/// Refusals of one principal or network, for one reason, that get their own audit entry
/// per minute; the rest are counted and logged as one entry per window.
pub const REFUSALS_ITEMIZED_PER_MINUTE: u32 = 10;
/// Refusals counted but not itemized are logged in one entry this long after the first.
pub const SUPPRESSION_WINDOW_MS: i64 = 60_000;

/// Refusals counted but not itemized, to be logged as one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    /// Whose.
    pub who: Refused,
    /// Why they were refused.
    pub reason: filet_proto::audit::RefusalReason,
    /// How many.
    pub count: u64,
    /// The time of the first.
    pub since: Timestamp,
}

struct Bucket {
    tokens: f64,
    last: Timestamp,
    suppressed: u64,
    since: Timestamp,
}

/// A token bucket per principal or network and refusal reason, on audited refusals: what
/// a peer can make the relay append (and fsync) is bounded, and nothing goes uncounted.
pub struct RefusalLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<(Refused, filet_proto::audit::RefusalReason), Bucket>>,
}

impl RefusalLimiter {
    /// `per_minute` itemized refusals per principal or network and reason.
    pub fn new(per_minute: u32) -> Self {
        RefusalLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this refusal gets its own audit entry; if not, it is counted.
    pub fn admit(
        &self,
        who: &Refused,
        reason: filet_proto::audit::RefusalReason,
        now: Timestamp,
    ) -> bool {
        let cap = f64::from(self.per_minute.max(1));
        let per_ms = cap / 60_000.0;
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() > 100_000 {
            // Bounded memory under a flood from many networks: forget idle buckets with
            // nothing left to log.
            b.retain(|_, k| k.suppressed > 0 || now.ms_since(k.last) < 60_000);
        }
        let k = b.entry((who.clone(), reason)).or_insert(Bucket {
            tokens: cap,
            last: now,
            suppressed: 0,
            since: now,
        });
        k.tokens = (k.tokens + now.ms_since(k.last).max(0) as f64 * per_ms).min(cap);
        k.last = now;
        if k.tokens >= 1.0 {
            k.tokens -= 1.0;
            true
        } else {
            if k.suppressed == 0 {
                k.since = now;
            }
            k.suppressed += 1;
            false
        }
    }

    /// Takes the counts whose window ([`SUPPRESSION_WINDOW_MS`] from the first) has ended
    /// at `now`, or every count if `all` (when the relay stops).
    pub fn take_suppressed(&self, now: Timestamp, all: bool) -> Vec<Suppressed> {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for ((who, reason), k) in b.iter_mut() {
            if k.suppressed > 0 && (all || now.ms_since(k.since) >= SUPPRESSION_WINDOW_MS) {
                out.push(Suppressed {
                    who: who.clone(),
                    reason: *reason,
                    count: std::mem::take(&mut k.suppressed),
                    since: k.since,
                });
            }
        }
        out.sort_by_key(|s| (s.since, s.reason));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_the_24_of_ipv4_and_the_64_of_ipv6() {
        let p = |s: &str| Prefix::of(s.parse().unwrap());
        assert_eq!(p("192.0.2.1"), p("192.0.2.254"));
        assert_ne!(p("192.0.2.1"), p("192.0.3.1"));
        assert_eq!(p("2001:db8:1:2::1"), p("2001:db8:1:2:ffff::9"));
        assert_ne!(p("2001:db8:1:2::1"), p("2001:db8:1:3::1"));
        assert_eq!(p("::ffff:192.0.2.7"), p("192.0.2.1"));
        assert_eq!(p("192.0.2.1").to_string(), "192.0.2.0/24");
        assert_eq!(p("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn the_handshake_budget_bounds_each_network_and_the_total_and_frees_on_drop() {
        let b = HandshakeBudget::new(3, 2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let s1 = b.begin(ip("192.0.2.1")).unwrap();
        let _s2 = b.begin(ip("192.0.2.2")).unwrap();
        assert!(matches!(
            b.begin(ip("192.0.2.3")),
            Err(HandshakeRefusal::Prefix(_, 2))
        ));
        let _s3 = b.begin(ip("198.51.100.1")).unwrap();
        assert_eq!(
            b.begin(ip("203.0.113.1")).err(),
            Some(HandshakeRefusal::Total(3))
        );
        drop(s1);
        assert_eq!(b.in_progress(), 2);
        assert!(b.begin(ip("192.0.2.3")).is_ok());
    }

    #[test]
    fn refuses_past_the_limit_and_refills() {
        let r = RateLimiter::new(60); // one per second
        let p: Principal = "A/B/c".parse().unwrap();
        let t0 = Timestamp(1_000_000);
        for _ in 0..60 {
            assert!(r.check(&p, t0).is_ok());
        }
        assert_eq!(r.check(&p, t0), Err(1000));
        assert_eq!(r.check(&p, t0.plus_ms(400)), Err(600));
        assert!(r.check(&p, t0.plus_ms(1000)).is_ok());
        let other: Principal = "A/B/d".parse().unwrap();
        assert!(r.check(&other, t0).is_ok());
        assert!(RateLimiter::new(0).check(&p, t0).is_ok());
    }

    #[test]
    fn refusals_past_the_limit_are_counted_and_taken_once_their_window_ends() {
        use filet_proto::audit::RefusalReason as R;
        let r = RefusalLimiter::new(2);
        let a = Refused::Principal("A/B/c".into());
        let net = Refused::Network(Prefix::of("2001:db8::1".parse().unwrap()));
        let t0 = Timestamp(0);
        assert!(r.admit(&a, R::AuditDenied, t0));
        assert!(r.admit(&a, R::AuditDenied, t0));
        assert!(!r.admit(&a, R::AuditDenied, t0.plus_ms(10)));
        assert!(!r.admit(&a, R::AuditDenied, t0.plus_ms(20)));
        // Another reason, another principal: their own buckets.
        assert!(r.admit(&a, R::UnknownIdentity, t0));
        assert!(r.admit(&net, R::UnknownIdentity, t0));
        assert!(r.admit(&net, R::UnknownIdentity, t0));
        // The same /64 is the same network.
        let same = Refused::Network(Prefix::of("2001:db8::ffff:1".parse().unwrap()));
        assert!(!r.admit(&same, R::UnknownIdentity, t0.plus_ms(5)));
        assert_eq!(r.take_suppressed(t0.plus_ms(59_000), false), []);
        let taken = r.take_suppressed(t0.plus_ms(60_010), false);
        assert_eq!(
            taken,
            [
                Suppressed {
                    who: net.clone(),
                    reason: R::UnknownIdentity,
                    count: 1,
                    since: t0.plus_ms(5)
                },
                Suppressed {
                    who: a.clone(),
                    reason: R::AuditDenied,
                    count: 2,
                    since: t0.plus_ms(10)
                },
            ]
        );
        assert_eq!(r.take_suppressed(t0.plus_ms(120_000), true), []);
    }
}
