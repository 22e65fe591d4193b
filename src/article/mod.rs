//! Articles (RFC 5536 format, RFC 5537 injection and relaying): parsing,
//! checks, the headers a server adds, and the overview fields. Pure: no I/O.
//!
//! - `parse`: the header block (RFC 5322 §2.2 fields and folding).
//! - `date`: RFC 5322 §3.3 date-time, obsolete forms included.
//! - `inject`: what POST (RFC 5537 §3.5) and IHAVE/TAKETHIS (§3.6) check
//!   and add.
//! - `cancel_lock`: who may withdraw an article (RFC 8315).

pub mod cancel_lock;
mod date;
mod inject;
mod parse;

use chrono::{DateTime, Utc};
use thiserror::Error;

pub use date::{format_date, parse_date};
pub use inject::stored_overview;
pub use parse::{Field, lenient_fields, unfold};

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
    /// The server's Cancel-Lock secrets, when posts get locks (RFC 8315):
    /// every post gets the operator's lock, a logged-in user's post their
    /// own too, and their cancel or superseding article the Cancel-Key that
    /// opens it.
    pub cancel_secrets: Option<&'a cancel_lock::Secrets>,
    /// The message-id POST's 340 answer recommended (`new_message_id`):
    /// an article without one gets it, as INN's nnrpd does, so a reader
    /// that kept it knows its article's message-id. `None`: a new one.
    pub offered_id: Option<&'a MessageId>,
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
    /// The Path header's entries after our prepend, leftmost first: the
    /// stored Path split on `!`, trimmed, empty entries (from `!!`) dropped.
    /// A posted article's has the `.POSTED` diagnostic as its second entry.
    pub path: Vec<String>,
    /// The Control header, if any.
    pub control: Option<String>,
    /// The message-id this article withdraws: the target of a `cancel`
    /// control message (RFC 5537 §5.3), or the article it supersedes
    /// (§5.4).
    pub withdraws: Option<MessageId>,
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
    /// The verb of a control message, in lower case (`cancel`,
    /// `newgroup`...): such an article is filed in `control.<verb>` or
    /// `control` where we carry those groups, as INN files it.
    pub fn control_verb(&self) -> Option<String> {
        control_verb(self.control.as_deref()?)
    }

    /// How many header fields the article has (folded lines count once).
    pub fn header_count(&self) -> usize {
        // A field starts the head or follows a LF, and is not a fold, an
        // empty line or the CR of one.
        let starts_field =
            |c: Option<&u8>| c.is_some_and(|c| !matches!(c, b' ' | b'\t' | b'\r' | b'\n'));
        usize::from(starts_field(self.head.first()))
            + memchr::memchr_iter(b'\n', &self.head)
                .filter(|&i| starts_field(self.head.get(i + 1)))
                .count()
    }

    /// The article as stored and served, with `Xref: {xref}` as the last
    /// header, and its overview line without the leading article number:
    /// `overview TAB bytes TAB lines TAB "Xref: " xref`.
    pub fn finish(&self, xref: &str) -> (Vec<u8>, String) {
        self.finish_with(xref, true)
    }

    /// `finish` without the body, which is stored apart (`store::bodies`):
    /// the head through its blank line. The overview line is the whole
    /// article's.
    pub fn finish_head(&self, xref: &str) -> (Vec<u8>, String) {
        self.finish_with(xref, false)
    }

    fn finish_with(&self, xref: &str, with_body: bool) -> (Vec<u8>, String) {
        let size = self.stored_len(xref);
        let body = if with_body { &self.body[..] } else { &[] };
        let mut article = Vec::with_capacity(size - self.body.len() + body.len());
        article.extend_from_slice(&self.head);
        article.extend_from_slice(b"Xref: ");
        article.extend_from_slice(xref.as_bytes());
        article.extend_from_slice(b"\r\n\r\n");
        article.extend_from_slice(body);
        let overview = format!(
            "{}\t{}\t{}\tXref: {}",
            self.overview, size, self.body_lines, xref
        );
        (article, overview)
    }

    /// The stored size, in octets, of `finish(xref)`'s article.
    pub fn stored_len(&self, xref: &str) -> usize {
        self.head.len() + b"Xref: ".len() + xref.len() + b"\r\n\r\n".len() + self.body.len()
    }
}

/// Checks a client's POST and fills in what it left out, as an injecting
/// agent does (RFC 5537 §3.5): Message-ID and Date when missing, Path
/// (`identity!.POSTED!not-for-mail`, or `identity!.POSTED!` prepended to the
/// client's Path), Injection-Date, Injection-Info. Refuses a missing From,
/// Newsgroups or Subject (checked in that order), a bad message-id, a
/// malformed or more than 24 hours ahead Date, a malformed header, a header
/// line over 998 octets, and an article already injected (Injection-Date, or
/// `.POSTED` in Path). Drops the client's Xref and Injection-Info.
///
/// `raw` is dot-unstuffed with CRLF line ends; the blank line before the
/// body may be missing when there is no body.
pub fn prepare_post(raw: &[u8], cx: &InjectionContext<'_>) -> Result<Prepared, ArticleError> {
    inject::post(raw, cx)
}

/// The verb of a Control header's value, in lower case.
pub fn control_verb(control: &str) -> Option<String> {
    Some(control.split_whitespace().next()?.to_ascii_lowercase())
}

/// The groups a control message with `verb` is filed in, in order of
/// preference: the first of them a server carries takes it (INN's way).
pub fn control_groups(verb: &str) -> [String; 2] {
    [format!("control.{verb}"), "control".to_owned()]
}

/// A new message-id of ours (`<unique@domain>`), for POST's 340 answer:
/// INN offers one there ("recommended Message-ID"), and a newsreader that
/// uses it knows its article's message-id before it posts, which it needs
/// to write a Cancel-Lock of its own (tin does).
pub fn new_message_id(domain: &str, now: DateTime<Utc>) -> Option<MessageId> {
    inject::generate_message_id(domain, now).ok()
}

/// Checks a relayed article (IHAVE / TAKETHIS, RFC 5537 §3.6): all of Path,
/// From, Newsgroups, Subject, Message-ID and Date must be present and valid;
/// the Message-ID must equal `offered` when given; Path must not already hold
/// `path_identity` (loop); then `path_identity!` is prepended to Path.
pub fn prepare_relay(
    raw: &[u8],
    offered: Option<&MessageId>,
    path_identity: &str,
) -> Result<Prepared, ArticleError> {
    inject::relay(raw, offered, path_identity)
}

/// The unfolded value of header `name` (case-insensitive) in a stored
/// article, for HDR/XHDR/XPAT of headers that are not in the overview.
/// `None` when absent.
///
/// The value is unfolded and sanitised like an overview field (RFC 3977
/// §8.3.2: fold CRLFs removed, TAB/CR/LF made spaces, leading whitespace
/// dropped), and converted lossily when it is not UTF-8.
pub fn header_value(article: &[u8], name: &str) -> Option<String> {
    let (head, _) = split(article);
    parse::lenient_fields(head)
        .find(|f| f.is(name))
        .map(|f| String::from_utf8_lossy(&f.unfolded()).into_owned())
}

/// The `group:number` entries of a stored article's Xref header (its
/// first word, the server's identity, left out), in header order.
pub fn xref_entries(article: &[u8]) -> Vec<(String, u64)> {
    header_value(article, "Xref")
        .map(|v| xref_pairs(&v))
        .unwrap_or_default()
}

/// The `group:number` pairs of an Xref value (`host group:number ...`).
pub fn xref_pairs(value: &str) -> Vec<(String, u64)> {
    value
        .split_whitespace()
        .skip(1)
        .filter_map(|e| {
            let (group, number) = e.rsplit_once(':')?;
            Some((group.to_owned(), number.parse().ok()?))
        })
        .collect()
}

/// Splits a stored article at the blank line: (head with its final CRLF, body).
///
/// Precisely: at the first CRLF CRLF, the head is everything up to and
/// including the first CRLF and the body everything after the second. An
/// article that begins with CRLF has an empty head; one with no blank line
/// is all head and has an empty body.
pub fn split(article: &[u8]) -> (&[u8], &[u8]) {
    if let Some(rest) = article.strip_prefix(b"\r\n") {
        return (&[], rest);
    }
    match memchr::memmem::find(article, b"\r\n\r\n") {
        Some(i) => {
            let (head, rest) = article.split_at(i + 2);
            (head, rest.get(2..).unwrap_or_default())
        }
        None => (article, &[]),
    }
}

#[cfg(test)]
mod tests;
