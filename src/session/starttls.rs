//! STARTTLS (RFC 4642, updated by RFC 8143): which sessions may start TLS,
//! and what a session forgets once it has. The handshake itself runs in
//! the connection loop, which owns the socket.

use tokio_rustls::TlsAcceptor;

use super::Session;

impl Session {
    /// A session on a connection that is TLS from its first byte (NNTPS).
    pub fn over_tls(mut self) -> Session {
        self.tls = true;
        self.starttls = None;
        self
    }

    /// A session on a plain connection that offers STARTTLS.
    pub fn offering_starttls(mut self, acceptor: TlsAcceptor) -> Session {
        if !self.tls {
            self.starttls = Some(acceptor);
        }
        self
    }

    /// Whether STARTTLS may be used now (RFC 4642 §2.2.1): it is offered,
    /// TLS is not already active, the client has not authenticated, and
    /// no compression layer is active (RFC 8054 §2.2.2).
    pub(super) fn may_start_tls(&self) -> bool {
        self.starttls.is_some() && !self.tls && self.user.is_none() && !self.compressed()
    }

    /// After a successful handshake, the session starts again (RFC 4642
    /// §2.2.2): what the client said in clear (a selected group, a pending
    /// AUTHINFO USER) is forgotten, and STARTTLS is no longer offered.
    pub(super) fn tls_started(&mut self) {
        self.tls = true;
        self.starttls = None;
        self.group = None;
        self.current = None;
        self.pending_user = None;
    }
}
