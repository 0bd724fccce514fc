//! Per-principal post rate limit: a token bucket of `per_minute` tokens, refilled
//! continuously. A refused post gets the delay after which one token is back.

use std::collections::HashMap;
use std::sync::Mutex;

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

/// How many failed handshakes per source address and minute get their own audit entry.
pub const HANDSHAKE_REFUSALS_PER_MINUTE: u32 = 10;

/// A token bucket per source address that counts what it turns away.
pub struct PerAddress {
    per_minute: u32,
    buckets: Mutex<HashMap<std::net::IpAddr, (f64, Timestamp, u64)>>,
}

impl PerAddress {
    /// `per_minute` admissions per address.
    pub fn new(per_minute: u32) -> Self {
        PerAddress {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one event from `addr` at `now`: `Some(n)` with the number turned away since
    /// the last admission, or `None` if over the limit (counted).
    pub fn admit(&self, addr: std::net::IpAddr, now: Timestamp) -> Option<u64> {
        let cap = f64::from(self.per_minute.max(1));
        let per_ms = cap / 60_000.0;
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if b.len() > 100_000 {
            // Bounded memory under a spoofed-address flood: forget idle addresses.
            b.retain(|_, (_, last, _)| now.ms_since(*last) < 60_000);
        }
        let (tokens, last, skipped) = b.entry(addr).or_insert((cap, now, 0));
        *tokens = (*tokens + now.ms_since(*last).max(0) as f64 * per_ms).min(cap);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Some(std::mem::take(skipped))
        } else {
            *skipped += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn per_address_counts_what_it_turns_away() {
        let r = PerAddress::new(2);
        let a: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Timestamp(0);
        assert_eq!(r.admit(a, t0), Some(0));
        assert_eq!(r.admit(a, t0), Some(0));
        assert_eq!(r.admit(a, t0), None);
        assert_eq!(r.admit(a, t0), None);
        assert_eq!(r.admit(a, t0.plus_ms(30_000)), Some(2));
        assert_eq!(r.admit("127.0.0.2".parse().unwrap(), t0), Some(0));
    }
}
