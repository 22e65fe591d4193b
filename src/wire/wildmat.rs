//! Wildmats (RFC 3977 §4), with INN's `@` poison marker (newsfeeds(5)).
//! STUB: to be implemented.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid wildmat: {0}")]
pub struct WildmatError(pub &'static str);

/// A parsed wildmat: a comma-separated list of patterns, each optionally
/// negated with `!` (or poisoned with `@`, INN's extension for feeds).
/// The last pattern that matches decides (RFC 3977 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildmat {
    source: String,
}

impl Wildmat {
    /// Parses `wildmat = wildmat-pattern *("," ["!"] wildmat-pattern)`;
    /// `allow_poison` admits INN's `@` prefix (feeds only; never from a client).
    pub fn parse(s: &str, allow_poison: bool) -> Result<Wildmat, WildmatError> {
        let _ = allow_poison;
        Ok(Wildmat {
            source: s.to_owned(),
        })
    }

    /// True when the last pattern that matches `name` is a positive one.
    pub fn matches(&self, name: &str) -> bool {
        let _ = name;
        todo!()
    }

    /// True when the last pattern that matches `name` is a `@` poison pattern.
    pub fn poisoned(&self, name: &str) -> bool {
        let _ = name;
        todo!()
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}
