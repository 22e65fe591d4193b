//! COMPRESS (RFC 8054): whether a session may turn compression on, and what
//! it may no longer do once it has. The layer itself is in
//! `wire::deflate`; the connection loop starts it after the 206.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Session;
use crate::wire::codes;
use crate::wire::response::Response;

/// One of the `limits.max_compressed_connections` places: a compressing
/// connection holds ~500 KiB of DEFLATE state (measured: 502 KiB of RSS
/// each over 200 compressing connections, 22 KiB each for plain ones), so
/// their number is bounded. Given back when the session ends.
pub(super) struct CompressSlot(Arc<AtomicUsize>);

impl Drop for CompressSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The one algorithm RFC 8054 defines, and the only one we offer.
const DEFLATE: &str = "DEFLATE";

impl Session {
    /// Whether COMPRESS is offered now: compression is not on already, the
    /// operator has not turned it off (`limits.max_compressed_connections`
    /// of 0), and on an encrypted connection `tls.compress` allows it
    /// (RFC 8054 §7: compressing under TLS can leak what is sent).
    pub(super) fn may_compress(&self) -> bool {
        self.compression.is_none()
            && self.config().limits.max_compressed_connections > 0
            && (!self.tls || self.config().tls.compress)
    }

    /// Whether the connection is compressed.
    pub(super) fn compressed(&self) -> bool {
        self.compression.is_some()
    }

    /// The answer that says a command cannot follow COMPRESS (RFC 8054
    /// §2.2.2: COMPRESS again, STARTTLS and AUTHINFO get 502).
    pub(super) fn already_compressed() -> Response {
        Response::new(codes::NOT_PERMITTED, "DEFLATE compression already active")
    }

    /// COMPRESS with an algorithm the grammar allows (admitted, so the
    /// connection is not compressed yet): a place among the compressing
    /// connections, or the refusal to send.
    pub(super) fn compress(&self, algorithm: &str) -> Result<CompressSlot, Response> {
        if algorithm != DEFLATE {
            return Err(Response::new(
                codes::FEATURE_NOT_SUPPORTED,
                "Compression algorithm not supported",
            ));
        }
        let max = self.config().limits.max_compressed_connections;
        let count = self.shared.compressing.clone();
        let taken = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        });
        match taken {
            Ok(_) => Ok(CompressSlot(count)),
            Err(_) => Err(Response::new(
                codes::INTERNAL_FAULT,
                "Unable to activate compression",
            )),
        }
    }

    /// After 206 has been sent and the layer started.
    pub(super) fn compression_started(&mut self, slot: CompressSlot) {
        self.compression = Some(slot);
    }
}
