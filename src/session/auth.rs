//! AUTHINFO USER / PASS and AUTHINFO SASL PLAIN (RFC 4643, RFC 4616).
//!
//! A password is only asked for where it may travel: over TLS (NNTPS or
//! after STARTTLS), or on a connection from `auth.plaintext_from`;
//! elsewhere 483. A wrong password and an unknown user get the same 481
//! after the same work, and an address with too many recent failures gets
//! 481 without a try.

use super::Session;
use crate::auth::verify_password;
use crate::store::StoreError;
use crate::wire::codes;
use crate::wire::response::Response;

impl Session {
    /// Whether this connection may send a password now.
    fn may_send_password(&self) -> bool {
        let ip = self.peer.ip();
        self.tls
            || self
                .config()
                .auth
                .plaintext_from
                .iter()
                .any(|net| net.contains(ip))
    }

    /// AUTHINFO USER (RFC 4643 §2.3).
    pub(super) fn authinfo_user(&mut self, name: String) -> Response {
        if self.user.is_some() {
            return Response::new(codes::NOT_PERMITTED, "Already authenticated");
        }
        if !self.may_send_password() {
            return Response::new(
                codes::ENCRYPTION_REQUIRED,
                "Encryption required for authentication",
            );
        }
        self.pending_user = Some(name);
        Response::new(codes::PASSWORD_REQUIRED, "Password required")
    }

    /// AUTHINFO PASS (RFC 4643 §2.3).
    pub(super) async fn authinfo_pass(&mut self, password: String) -> Result<Response, StoreError> {
        if self.user.is_some() {
            return Ok(Response::new(codes::NOT_PERMITTED, "Already authenticated"));
        }
        if !self.may_send_password() {
            return Ok(Response::new(
                codes::ENCRYPTION_REQUIRED,
                "Encryption required for authentication",
            ));
        }
        let Some(name) = self.pending_user.take() else {
            return Ok(Response::new(
                codes::AUTH_OUT_OF_SEQUENCE,
                "Authentication commands issued out of sequence",
            ));
        };
        self.log_in(name, password).await
    }

    /// AUTHINFO SASL PLAIN with its initial response (RFC 4643 §2.4,
    /// RFC 4616): base64 of `authzid NUL authcid NUL passwd`.
    pub(super) async fn authinfo_sasl(
        &mut self,
        mechanism: &str,
        initial: Option<&str>,
    ) -> Result<Response, StoreError> {
        if self.user.is_some() {
            return Ok(Response::new(codes::NOT_PERMITTED, "Already authenticated"));
        }
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return Ok(Response::new(
                codes::FEATURE_NOT_SUPPORTED,
                "Only the PLAIN mechanism is offered",
            ));
        }
        if !self.may_send_password() {
            return Ok(Response::new(
                codes::ENCRYPTION_REQUIRED,
                "Encryption required for authentication",
            ));
        }
        let Some(initial) = initial else {
            // RFC 4643 §2.4: an empty challenge; the next line is the
            // client's response (see `sasl_response`).
            self.sasl_waiting = true;
            return Ok(Response::new(codes::SASL_CONTINUE, "="));
        };
        self.plain(initial).await
    }

    /// The client's line after 383: its PLAIN response, or `*` to cancel
    /// (RFC 4643 §2.4.2).
    pub(super) async fn sasl_response(&mut self, line: &[u8]) -> Result<Response, StoreError> {
        self.sasl_waiting = false;
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        if line == "*" {
            return Ok(Response::new(
                codes::AUTH_FAILED,
                "Authentication cancelled",
            ));
        }
        self.plain(line).await
    }

    async fn plain(&mut self, response: &str) -> Result<Response, StoreError> {
        let Some((authzid, authcid, password)) = decode_plain(response) else {
            return Ok(Response::new(
                codes::SYNTAX_ERROR,
                "Malformed PLAIN response",
            ));
        };
        // Acting as another identity is not offered.
        if !authzid.is_empty() && authzid != authcid {
            return Ok(Response::new(codes::AUTH_FAILED, "Authentication failed"));
        }
        self.log_in(authcid, password).await
    }

    async fn log_in(&mut self, name: String, password: String) -> Result<Response, StoreError> {
        let ip = self.peer.ip();
        let throttle = &self.shared.logins;
        if throttle.blocked(ip) {
            tracing::warn!(peer = %self.peer, "login refused: too many failures");
            return Ok(Response::new(
                codes::AUTH_FAILED,
                "Authentication failed (too many failures; try again later)",
            ));
        }
        let stored = self.store().user_hash(&name).await?;
        // argon2 is slow on purpose: keep it off the runtime's threads.
        let ok = tokio::task::spawn_blocking(move || verify_password(stored.as_deref(), &password))
            .await
            .unwrap_or(false);
        if ok {
            throttle.succeeded(ip);
            tracing::info!(peer = %self.peer, user = %name, "logged in");
            // A peer known by its login (`[[peer]] login`) is that peer
            // from now on, whatever its address.
            if let Some(p) = (self.config.peers.iter()).find(|p| p.login.as_ref() == Some(&name)) {
                self.peer_config = Some(p.clone());
            }
            self.user = Some(name);
            self.refresh_rule();
            Ok(Response::new(
                codes::AUTH_ACCEPTED,
                "Authentication accepted",
            ))
        } else {
            throttle.failed(ip);
            tracing::info!(peer = %self.peer, user = %name, "login failed");
            Ok(Response::new(codes::AUTH_FAILED, "Authentication failed"))
        }
    }

    /// The AUTHINFO line of CAPABILITIES (RFC 4643 §2.1): none once logged
    /// in; without arguments where a password may not be sent yet, or may
    /// never be because COMPRESS is active (RFC 8054 §2.2.2).
    pub(super) fn authinfo_capability(&self) -> Option<&'static str> {
        match (&self.user, self.may_send_password() && !self.compressed()) {
            (Some(_), _) => None,
            (None, true) => Some("AUTHINFO USER SASL\r\nSASL PLAIN\r\n"),
            (None, false) => Some("AUTHINFO\r\n"),
        }
    }
}

/// Decodes a SASL PLAIN response: (authzid, authcid, password).
fn decode_plain(b64: &str) -> Option<(String, String, String)> {
    let bytes = base64_decode(b64)?;
    let mut parts = bytes.split(|&b| b == 0);
    let authzid = parts.next()?;
    let authcid = parts.next()?;
    let password = parts.next()?;
    if parts.next().is_some() || authcid.is_empty() {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    Some((text(authzid)?, text(authcid)?, text(password)?))
}

/// Standard base64 (RFC 4648 §4) with padding; `None` on anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses_decode() {
        // "\0alice\0secret"
        assert_eq!(
            decode_plain("AGFsaWNlAHNlY3JldA=="),
            Some(("".into(), "alice".into(), "secret".into()))
        );
        assert_eq!(decode_plain("bm90IHBsYWlu"), None);
        assert_eq!(decode_plain("!!!!"), None);
        assert_eq!(base64_decode("TWFu"), Some(b"Man".to_vec()));
        assert_eq!(base64_decode("TWE="), Some(b"Ma".to_vec()));
        assert_eq!(base64_decode("TQ=="), Some(b"M".to_vec()));
        assert_eq!(base64_decode("TQ==TWFu"), None);
    }
}
