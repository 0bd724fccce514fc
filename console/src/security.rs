//! The console's frame: loopback only, a one-time login token exchanged for a session
//! cookie, loopback Host names only (no DNS rebinding), same Origin and a per-session form
//! token on every request that changes something, an idle timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

/// Default idle timeout of a session.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The session cookie's name for the console on `port`: cookies are shared by every port
/// of a host, and two consoles on one machine (two units) must not sign each other out.
pub fn session_cookie(port: u16) -> String {
    format!("filet_session_{port}")
}
/// The language cookie's name.
pub const LANG_COOKIE: &str = "filet_lang";

/// Refuses a listening address that is not loopback: the console serves only this machine.
///
/// # Errors
/// The address, and why it is refused.
pub fn check_listen(addr: SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "--listen {addr}: the console listens on loopback only (127.0.0.1 or [::1]); it is reached from this machine's browser"
        ))
    }
}

/// Whether a request's Host header names this console by a loopback name: `127.0.0.1:PORT`,
/// `localhost:PORT` or `[::1]:PORT`. Anything else (a DNS name that resolves to loopback,
/// another port) is refused, so that a page from elsewhere cannot reach the console through
/// DNS rebinding.
pub fn host_allowed(host: Option<&str>, port: u16) -> bool {
    let Some(host) = host else { return false };
    let Some((name, p)) = host.rsplit_once(':') else {
        return false;
    };
    if p != port.to_string() {
        return false;
    }
    name == "127.0.0.1" || name.eq_ignore_ascii_case("localhost") || name == "[::1]"
}

/// Whether a state-changing request comes from the console's own pages: its Origin header
/// is `http://` + the request's own (allowed) Host. A missing or foreign Origin is refused.
///
/// One case needs the browser's Fetch Metadata: because the console sends
/// `Referrer-Policy: no-referrer`, browsers send `Origin: null` on its own form posts (the
/// Fetch standard serializes the origin as `null` under that policy). `null` is accepted
/// only with `Sec-Fetch-Site: same-origin`, which the browser sets itself and no page can
/// forge; a `null` from anywhere else (a sandboxed frame, a local file) says `cross-site`
/// or `none` and is refused.
pub fn origin_allowed(
    origin: Option<&str>,
    fetch_site: Option<&str>,
    host: Option<&str>,
    port: u16,
) -> bool {
    match (origin, host) {
        (Some("null"), Some(h)) if host_allowed(Some(h), port) => fetch_site == Some("same-origin"),
        (Some(o), Some(h)) if host_allowed(Some(h), port) => {
            o.strip_prefix("http://").is_some_and(|rest| rest == h)
                && fetch_site.is_none_or(|s| s == "same-origin")
        }
        _ => false,
    }
}

/// Compares two secrets in time that depends on their lengths only.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random secret: 32 bytes as 64 hexadecimal digits.
pub fn secret() -> String {
    let mut b = [0u8; 32];
    // The system's random source failing is not something to continue through.
    if SystemRandom::new().fill(&mut b).is_err() {
        std::process::abort();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One value of a `Cookie` header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The session id (the cookie's value).
    pub id: String,
    /// The form token every state-changing request carries.
    pub form_token: String,
    last_used: Instant,
}

/// One-time login tokens and sessions.
pub struct Sessions {
    idle: Duration,
    login_tokens: Mutex<Vec<String>>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// No token, no session yet.
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            login_tokens: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    /// A new one-time login token.
    pub fn issue_login_token(&self) -> String {
        let t = secret();
        if let Ok(mut v) = self.login_tokens.lock() {
            v.push(t.clone());
        }
        t
    }

    /// Exchanges a login token (once) for a new session.
    pub fn redeem(&self, token: &str, now: Instant) -> Option<Session> {
        let found = {
            let mut v = self.login_tokens.lock().ok()?;
            let i = v.iter().position(|t| tokens_equal(t, token))?;
            v.swap_remove(i);
            true
        };
        if !found {
            return None;
        }
        let s = Session {
            id: secret(),
            form_token: secret(),
            last_used: now,
        };
        self.sessions.lock().ok()?.insert(s.id.clone(), s.clone());
        Some(s)
    }

    /// The session of a cookie value, if it exists and was used within the idle timeout
    /// (it is then used again now); an idle session is removed.
    pub fn touch(&self, id: &str, now: Instant) -> Option<Session> {
        let mut m = self.sessions.lock().ok()?;
        let key = m.keys().find(|k| tokens_equal(k, id))?.clone();
        let idle = self.idle;
        let s = m.get_mut(&key)?;
        if now.saturating_duration_since(s.last_used) > idle {
            m.remove(&key);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    /// Whether a session exists and is not idle (without using it).
    pub fn alive(&self, id: &str) -> bool {
        let now = Instant::now();
        self.sessions.lock().is_ok_and(|m| {
            m.iter().any(|(k, s)| {
                tokens_equal(k, id) && now.saturating_duration_since(s.last_used) <= self.idle
            })
        })
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        if let Ok(mut m) = self.sessions.lock() {
            m.retain(|k, _| !tokens_equal(k, id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_host_name_with_the_console_port_is_accepted() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
        ] {
            assert!(host_allowed(Some(ok), 8080), "{ok}");
        }
        for bad in [
            None,
            Some("127.0.0.1"),
            Some("127.0.0.1:8081"),
            Some("evil.example:8080"),
            Some("localhost.evil.example:8080"),
            Some("127.0.0.2:8080"),
            Some("[::1]"),
            Some(""),
        ] {
            assert!(!host_allowed(bad, 8080), "{bad:?}");
        }
    }

    #[test]
    fn a_state_change_needs_the_same_origin_as_the_host() {
        let h = Some("127.0.0.1:8080");
        let same = Some("same-origin");
        assert!(origin_allowed(Some("http://127.0.0.1:8080"), None, h, 8080));
        assert!(origin_allowed(Some("http://127.0.0.1:8080"), same, h, 8080));
        assert!(!origin_allowed(
            Some("http://127.0.0.1:8080"),
            Some("cross-site"),
            h,
            8080
        ));
        assert!(!origin_allowed(None, same, h, 8080));
        // `null`: the browser's own posts under no-referrer, and only those.
        assert!(origin_allowed(Some("null"), same, h, 8080));
        assert!(!origin_allowed(Some("null"), None, h, 8080));
        assert!(!origin_allowed(Some("null"), Some("cross-site"), h, 8080));
        assert!(!origin_allowed(Some("null"), Some("none"), h, 8080));
        assert!(!origin_allowed(
            Some("http://localhost:8080"),
            None,
            h,
            8080
        ));
        assert!(!origin_allowed(
            Some("https://127.0.0.1:8080"),
            None,
            h,
            8080
        ));
        assert!(!origin_allowed(Some("http://evil.example"), None, h, 8080));
        assert!(!origin_allowed(
            Some("http://evil.example:8080"),
            None,
            Some("evil.example:8080"),
            8080
        ));
    }

    #[test]
    fn the_console_refuses_to_listen_beyond_loopback() {
        assert!(check_listen("127.0.0.1:0".parse().expect("addr")).is_ok());
        assert!(check_listen("[::1]:0".parse().expect("addr")).is_ok());
        let e = check_listen("0.0.0.0:8080".parse().expect("addr")).expect_err("refused");
        assert!(e.contains("loopback"), "{e}");
        assert!(check_listen("192.0.2.1:8080".parse().expect("addr")).is_err());
    }

    #[test]
    fn a_login_token_works_once_and_a_session_ends_after_its_idle_time() {
        let s = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let token = s.issue_login_token();
        assert!(s.redeem("not-the-token", t0).is_none());
        let sess = s.redeem(&token, t0).expect("the token opens a session");
        assert!(s.redeem(&token, t0).is_none(), "a login token works once");
        assert!(s.touch(&sess.id, t0 + Duration::from_secs(59)).is_some());
        // Used at 59 s: idle until 119 s.
        assert!(s.touch(&sess.id, t0 + Duration::from_secs(118)).is_some());
        assert!(s.touch(&sess.id, t0 + Duration::from_secs(180)).is_none());
        assert!(
            s.touch(&sess.id, t0 + Duration::from_secs(181)).is_none(),
            "an idle session is gone"
        );
        assert!(s.touch("", t0).is_none());
    }

    #[test]
    fn secrets_compare_only_when_equal() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "ab"));
        assert!(!tokens_equal("", ""));
        assert_eq!(
            cookie(Some("a=1; filet_session=xyz; b=2"), "filet_session"),
            Some("xyz")
        );
        assert_eq!(cookie(Some("a=1"), "filet_session"), None);
    }
}
