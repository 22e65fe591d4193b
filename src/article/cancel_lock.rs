//! Cancel-Lock (RFC 8315): who may withdraw an article. An article carries
//! `Cancel-Lock: scheme:lock ...`; a cancel or a superseding article for it
//! carries `Cancel-Key: scheme:key ...`, and is genuine when the hash of one
//! key (its base64 text, hashed with its scheme) is one of the locks.
//!
//! Keys are made as RFC 8315 §4 recommends, and as INN's nnrpd and
//! libcanlock make them: `key = base64(HMAC(secret, uid + message-id))`,
//! `lock = base64(hash(key))`, with the scheme's hash for both. Only the
//! server knows the secret, so only the same user on the same server can
//! make the key that opens a lock.
//!
//! Pure: no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac};

/// A hash RFC 8315 registers. SHA-224 is registered too; ring does not
/// offer it, and a key of a scheme we cannot hash simply opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// What we write: SHA-256, which RFC 8315 §7 makes mandatory, and SHA-1,
/// which older news software still checks (INN writes both, for the same
/// reason).
const WRITTEN: [Scheme; 2] = [Scheme::Sha1, Scheme::Sha256];

impl Scheme {
    /// The scheme of an element's name, compared without case (RFC 8315
    /// §2: `scheme = "sha1" / "sha224" / ...`, case-insensitive as every
    /// ABNF string).
    fn named(name: &str) -> Option<Scheme> {
        Some(match name.to_ascii_lowercase().as_str() {
            "sha1" => Scheme::Sha1,
            "sha256" => Scheme::Sha256,
            "sha384" => Scheme::Sha384,
            "sha512" => Scheme::Sha512,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Sha1 => "sha1",
            Scheme::Sha256 => "sha256",
            Scheme::Sha384 => "sha384",
            Scheme::Sha512 => "sha512",
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Scheme::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Scheme::Sha256 => &digest::SHA256,
            Scheme::Sha384 => &digest::SHA384,
            Scheme::Sha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Scheme::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Scheme::Sha256 => hmac::HMAC_SHA256,
            Scheme::Sha384 => hmac::HMAC_SHA384,
            Scheme::Sha512 => hmac::HMAC_SHA512,
        }
    }

    /// The key (base64 text) for `uid` and `msgid` under `secret`.
    fn key(self, secret: &[u8], uid: &str, msgid: &str) -> String {
        let key = hmac::Key::new(self.hmac(), secret);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(uid.as_bytes());
        ctx.update(msgid.as_bytes());
        STANDARD.encode(ctx.sign().as_ref())
    }

    /// The lock a key opens: the hash of its base64 text.
    fn lock_of(self, key: &str) -> String {
        STANDARD.encode(digest::digest(self.digest(), key.as_bytes()).as_ref())
    }
}

/// The server's two Cancel-Lock secrets (kept in its database): `user`
/// makes each logged-in user's locks and keys (with their name as the
/// uid), `admin` the lock on every post made here that only the server's
/// operator can open (`tidings article cancel`), as INN's canlockuser and
/// canlockadmin.
#[derive(Clone, Default)]
pub struct Secrets {
    pub user: Vec<u8>,
    pub admin: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    /// The Cancel-Lock we give a post `msgid` made by `user` (if logged
    /// in): the operator's lock, and the user's.
    pub fn lock(&self, user: Option<&str>, msgid: &str) -> String {
        let admin = cancel_lock(&self.admin, "", msgid);
        match user {
            Some(user) => format!("{admin} {}", cancel_lock(&self.user, user, msgid)),
            None => admin,
        }
    }

    /// The Cancel-Key with which `user` withdraws their post `msgid`.
    pub fn user_key(&self, user: &str, msgid: &str) -> String {
        cancel_key(&self.user, user, msgid)
    }

    /// The Cancel-Key with which the operator withdraws any post `msgid`
    /// made here.
    pub fn admin_key(&self, msgid: &str) -> String {
        cancel_key(&self.admin, "", msgid)
    }
}

/// The `Cancel-Lock` elements that `cancel_key(secret, uid, msgid)` opens,
/// one per scheme we write, space-separated.
pub fn cancel_lock(secret: &[u8], uid: &str, msgid: &str) -> String {
    elements(|s| s.lock_of(&s.key(secret, uid, msgid)))
}

/// The `Cancel-Key` elements that withdraw the article `msgid` posted by
/// `uid`, space-separated.
pub fn cancel_key(secret: &[u8], uid: &str, msgid: &str) -> String {
    elements(|s| s.key(secret, uid, msgid))
}

fn elements(value: impl Fn(Scheme) -> String) -> String {
    WRITTEN
        .iter()
        .map(|&s| format!("{}:{}", s.name(), value(s)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `scheme:value` elements of a Cancel-Lock or Cancel-Key field value
/// (RFC 8315 §2, §3: separated by whitespace; comments in parentheses are
/// allowed between them and skipped), with the schemes we can hash.
fn parse(value: &str) -> impl Iterator<Item = (Scheme, &str)> {
    value
        .split_whitespace()
        .filter(|e| !e.starts_with('('))
        .filter_map(|e| {
            let (scheme, v) = e.split_once(':')?;
            Some((Scheme::named(scheme)?, v))
        })
}

/// Whether one of `keys` (a Cancel-Key value) opens one of `locks` (the
/// Cancel-Lock value of the article it would withdraw).
pub fn opens(keys: &str, locks: &str) -> bool {
    parse(keys).any(|(scheme, key)| {
        let lock = scheme.lock_of(key);
        parse(locks).any(|(s, l)| s == scheme && l == lock)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Worked out with Python's hmac, hashlib and base64, apart from this
    // code: hmac.new(b"s3cret", b"alice<a@b.example>", "sha256") etc.
    const KEY_SHA256: &str = "sha256:kIm00vD26W+LJqHuTXjLdQXtOzswUGOeA6yhNosHCRQ=";
    const LOCK_SHA256: &str = "sha256:lK/rONhaICo29HGoLWJPGvfYlVJsR+pt8xPSOzJoH2Y=";

    #[test]
    fn keys_and_locks_are_those_of_rfc_8315_section_4() {
        let key = cancel_key(b"s3cret", "alice", "<a@b.example>");
        let lock = cancel_lock(b"s3cret", "alice", "<a@b.example>");
        assert!(key.split(' ').any(|e| e == KEY_SHA256), "{key}");
        assert!(lock.split(' ').any(|e| e == LOCK_SHA256), "{lock}");
        assert!(key.starts_with("sha1:") && lock.starts_with("sha1:"));
    }

    #[test]
    fn a_key_opens_its_own_lock_only() {
        let lock = cancel_lock(b"s3cret", "alice", "<a@b.example>");
        assert!(opens(
            &cancel_key(b"s3cret", "alice", "<a@b.example>"),
            &lock
        ));
        assert!(opens(KEY_SHA256, LOCK_SHA256));
        // Another user, another article, another server's secret.
        assert!(!opens(
            &cancel_key(b"s3cret", "bob", "<a@b.example>"),
            &lock
        ));
        assert!(!opens(
            &cancel_key(b"s3cret", "alice", "<c@b.example>"),
            &lock
        ));
        assert!(!opens(
            &cancel_key(b"other", "alice", "<a@b.example>"),
            &lock
        ));
        // The lock itself is no key.
        assert!(!opens(&lock, &lock));
    }

    #[test]
    fn the_operator_opens_every_lock_of_ours_and_a_user_only_their_own() {
        let secrets = Secrets {
            user: b"users' secret".to_vec(),
            admin: b"operator's secret".to_vec(),
        };
        let alices = secrets.lock(Some("alice"), "<a@b.example>");
        let anonymous = secrets.lock(None, "<c@b.example>");
        assert!(opens(&secrets.admin_key("<a@b.example>"), &alices));
        assert!(opens(&secrets.admin_key("<c@b.example>"), &anonymous));
        assert!(opens(&secrets.user_key("alice", "<a@b.example>"), &alices));
        assert!(!opens(&secrets.user_key("bob", "<a@b.example>"), &alices));
        assert!(!opens(&secrets.admin_key("<a@b.example>"), &anonymous));
        assert_eq!(format!("{secrets:?}"), "Secrets { .. }");
    }

    #[test]
    fn elements_are_read_as_rfc_8315_writes_them() {
        let key = KEY_SHA256.replacen("sha256", "SHA256", 1);
        // Other locks, a comment and folding whitespace around the one.
        let locks = format!("sha1:AAAA (made by us)\r\n\t{LOCK_SHA256}  md5:x");
        assert!(opens(&format!("x-unknown:abc {key}"), &locks));
        // Same value under another scheme: no match.
        let swapped = LOCK_SHA256.replacen("sha256", "sha512", 1);
        assert!(!opens(KEY_SHA256, &swapped));
        assert!(!opens("", LOCK_SHA256));
        assert!(!opens("garbage", "garbage"));
    }
}
