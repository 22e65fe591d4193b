//! Articles (RFC 5536 format, RFC 5537 injection and relaying): parsing,
//! checks, the headers a server adds, and the overview fields. Pure: no I/O.
//! STUB: to be implemented.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::wire::types::{GroupName, MessageId};

/// Why an article was refused. The text is what the client sees after the
/// response code (441 for POST, 437/439 for IHAVE/TAKETHIS).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArticleError {
    #[error("{0}")]
    Malformed(String),
    #[error("missing required header {0}")]
    MissingHeader(&'static str),
    #[error("{0}")]
    BadHeader(String),
    #[error("article too large ({size} octets, limit {limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("path loop: article already passed through {0}")]
    PathLoop(String),
    #[error("message-id in IHAVE/TAKETHIS does not match the article's Message-ID")]
    IdMismatch,
}

/// What the server knows when it injects a posted article (RFC 5537 §3.4).
#[derive(Debug, Clone)]
pub struct InjectionContext<'a> {
    /// Our Path identity (config `path_identity`), e.g. `news.example.com`.
    pub path_identity: &'a str,
    /// The right-hand side for message-ids we generate, e.g. `example.com`.
    pub domain: &'a str,
    /// The time of injection, for Date and Injection-Date.
    pub now: DateTime<Utc>,
    /// The posting client's address, for Injection-Info's posting-host.
    pub posting_host: &'a str,
    /// The authenticated user, if any (Injection-Info's posting-account).
    pub user: Option<&'a str>,
}

/// A checked article ready for the writer: everything the store needs except
/// the article numbers, which only the writer can assign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub message_id: MessageId,
    /// Newsgroups, in header order, duplicates removed.
    pub newsgroups: Vec<GroupName>,
    /// The Distribution header's values (empty when absent).
    pub distributions: Vec<String>,
    /// The Path header's entries after our prepend, leftmost first.
    pub path: Vec<String>,
    /// The Control header, if any (not acted on yet).
    pub control: Option<String>,
    /// The header block as it will be stored: CRLF-terminated lines, in the
    /// order received (plus what we added), any Xref removed, no blank line.
    pub head: Vec<u8>,
    /// The body, CRLF-terminated lines, byte for byte as received.
    pub body: Vec<u8>,
    /// Overview fields 1-5 (Subject, From, Date, Message-ID, References),
    /// unfolded, with TAB/CR/LF replaced by spaces, joined by TAB.
    pub overview: String,
    /// Number of lines in the body.
    pub body_lines: u64,
}

impl Prepared {
    /// The article as stored and served, with `Xref: {xref}` as the last
    /// header, and its overview line without the leading article number:
    /// `overview TAB bytes TAB lines TAB "Xref: " xref`.
    pub fn finish(&self, xref: &str) -> (Vec<u8>, String) {
        let _ = xref;
        todo!()
    }

    /// The stored size, in octets, of `finish(xref)`'s article.
    pub fn stored_len(&self, xref: &str) -> usize {
        let _ = xref;
        todo!()
    }
}

/// Checks a client's POST and fills in what it left out (RFC 5537 §3.4):
/// Message-ID, Date, Path (`identity!POSTED!...`? see below), Injection-Date,
/// Injection-Info. Refuses a missing From, Newsgroups or Subject, a bad
/// message-id, a malformed Date or header.
pub fn prepare_post(raw: &[u8], cx: &InjectionContext<'_>) -> Result<Prepared, ArticleError> {
    let _ = (raw, cx);
    todo!()
}

/// Checks a relayed article (IHAVE / TAKETHIS, RFC 5537 §3.5): all of Path,
/// From, Newsgroups, Subject, Message-ID and Date must be present and valid;
/// the Message-ID must equal `offered` when given; Path must not already hold
/// `path_identity` (loop); then `path_identity!` is prepended to Path.
pub fn prepare_relay(
    raw: &[u8],
    offered: Option<&MessageId>,
    path_identity: &str,
) -> Result<Prepared, ArticleError> {
    let _ = (raw, offered, path_identity);
    todo!()
}

/// The unfolded value of header `name` (case-insensitive) in a stored
/// article, for HDR/XHDR/XPAT of headers that are not in the overview.
/// `None` when absent.
pub fn header_value(article: &[u8], name: &str) -> Option<String> {
    let _ = (article, name);
    todo!()
}

/// Splits a stored article at the blank line: (head with its final CRLF, body).
pub fn split(article: &[u8]) -> (&[u8], &[u8]) {
    let _ = article;
    todo!()
}
