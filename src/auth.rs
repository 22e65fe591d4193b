//! Passwords and logins (RFC 4643): argon2id hashes, verification that
//! takes as long for an unknown user as for a wrong password, and a
//! per-address limit on failed logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Whether `name` can be a user's name: printable ASCII without spaces
/// (AUTHINFO USER sends it as one argument, RFC 4643 §2.3), 1 to 64
/// octets. `tidings user add` and a peer's `login` both follow it.
pub fn is_user_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Hashes a password for storage (argon2id with the crate's default,
/// OWASP-recommended parameters), as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// A hash of a password nobody has, verified against when the user does
/// not exist, so an unknown user costs (and answers) the same as a wrong
/// password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password for unknown users").unwrap_or_default())
}

/// Whether `password` matches `stored` (a PHC string); with `stored`
/// absent (no such user), verifies against a decoy and says no. Slow by
/// design: call it off the runtime's threads.
pub fn verify_password(stored: Option<&str>, password: &str) -> bool {
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (decoy_hash(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// Failed logins per client address, within a sliding minute.
pub struct LoginThrottle {
    max_per_minute: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl LoginThrottle {
    pub fn new(max_per_minute: u32) -> LoginThrottle {
        LoginThrottle {
            max_per_minute,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` has used up its failed logins for now.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let Ok(map) = self.failures.lock() else {
            return false;
        };
        match map.get(&ip) {
            Some((since, n)) => since.elapsed() < WINDOW && *n >= self.max_per_minute,
            None => false,
        }
    }

    /// Records a failed login from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        // Forget old entries now and then, so the map stays small.
        if map.len() > 10_000 {
            map.retain(|_, (since, _)| since.elapsed() < WINDOW);
        }
        let entry = map.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// Forgets `ip`'s failures after a successful login.
    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(Some(&h), "correct horse"));
        assert!(!verify_password(Some(&h), "wrong horse"));
        assert!(!verify_password(None, "correct horse"));
        assert!(!verify_password(Some("not a hash"), "x"));
    }

    #[test]
    fn failures_are_counted_per_address() {
        let t = LoginThrottle::new(2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        t.failed(a);
        assert!(!t.blocked(a));
        t.failed(a);
        assert!(t.blocked(a));
        assert!(!t.blocked(b));
        t.succeeded(a);
        assert!(!t.blocked(a));
    }
}
