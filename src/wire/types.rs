//! Protocol value types (RFC 3977 §3.6, §4.1, §9.8). A value of one of these
//! types that exists is valid: `try_from` is the only way in.

use std::fmt;

use thiserror::Error;

/// Why a protocol value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TypeError {
    #[error("invalid message-id: {0}")]
    MessageId(&'static str),
    #[error("invalid newsgroup name: {0}")]
    GroupName(&'static str),
    #[error("invalid article number")]
    Number,
    #[error("invalid range")]
    Range,
}

/// A message-id, angle brackets included (RFC 3977 §3.6, RFC 5536 §3.1.3).
///
/// RFC 3977: 3 to 250 octets, begins with `<`, ends with `>`, no `>` inside,
/// printable US-ASCII only (no space, no control).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<&[u8]> for MessageId {
    type Error = TypeError;

    fn try_from(b: &[u8]) -> Result<Self, TypeError> {
        if b.len() < 3 {
            return Err(TypeError::MessageId("shorter than 3 octets"));
        }
        if b.len() > 250 {
            return Err(TypeError::MessageId("longer than 250 octets"));
        }
        if b[0] != b'<' || b[b.len() - 1] != b'>' {
            return Err(TypeError::MessageId("must be enclosed in <>"));
        }
        let inner = &b[1..b.len() - 1];
        if inner.iter().any(|&c| !(0x21..=0x7e).contains(&c)) {
            return Err(TypeError::MessageId(
                "contains a space or non-printable octet",
            ));
        }
        if inner.contains(&b'>') || inner.contains(&b'<') {
            return Err(TypeError::MessageId("contains < or > inside"));
        }
        // All octets are printable ASCII, so this cannot fail.
        let s = std::str::from_utf8(b).map_err(|_| TypeError::MessageId("not ASCII"))?;
        Ok(MessageId(s.to_owned()))
    }
}

impl TryFrom<&str> for MessageId {
    type Error = TypeError;
    fn try_from(s: &str) -> Result<Self, TypeError> {
        MessageId::try_from(s.as_bytes())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A newsgroup name (RFC 3977 §4.1 `newsgroup-name = 1*wildmat-exact`,
/// tightened by RFC 5536 §3.1.4: components separated by `.`, no empty
/// component). Case is preserved; names are compared exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(String);

impl GroupName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&[u8]> for GroupName {
    type Error = TypeError;

    fn try_from(b: &[u8]) -> Result<Self, TypeError> {
        if b.is_empty() {
            return Err(TypeError::GroupName("empty"));
        }
        if b.len() > 497 {
            return Err(TypeError::GroupName("too long"));
        }
        // wildmat-exact: printable US-ASCII except ! * , ? [ \ ]
        for &c in b {
            if !(0x21..=0x7e).contains(&c) || b"!*,?[\\]".contains(&c) {
                return Err(TypeError::GroupName(
                    "contains a character not allowed in a newsgroup name",
                ));
            }
        }
        if b.split(|&c| c == b'.')
            .any(|component| component.is_empty())
        {
            return Err(TypeError::GroupName("has an empty component"));
        }
        let s = std::str::from_utf8(b).map_err(|_| TypeError::GroupName("not ASCII"))?;
        Ok(GroupName(s.to_owned()))
    }
}

impl TryFrom<&str> for GroupName {
    type Error = TypeError;
    fn try_from(s: &str) -> Result<Self, TypeError> {
        GroupName::try_from(s.as_bytes())
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An article number (RFC 3977 §6: 1 to 2,147,483,647 at least; we allow up
/// to 2^63-1, which RFC 3977 §6 permits as an extension).
pub type ArticleNumber = u64;

/// The largest article number we will ever parse.
pub const MAX_ARTICLE_NUMBER: u64 = i64::MAX as u64;

/// An article-number range (RFC 3977 §6.1.2.2 `range = article-number ["-" [article-number]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub low: ArticleNumber,
    /// `None` means "and everything after" (`n-`).
    pub high: Option<ArticleNumber>,
}

impl Range {
    pub fn single(n: ArticleNumber) -> Range {
        Range {
            low: n,
            high: Some(n),
        }
    }

    /// The inclusive upper bound, clamped to what a store can hold.
    pub fn high_or_max(&self) -> ArticleNumber {
        self.high.unwrap_or(MAX_ARTICLE_NUMBER)
    }

    /// True when no article number can fall in it (RFC 3977 allows `m-n`
    /// with m > n; it simply selects nothing).
    pub fn is_empty(&self) -> bool {
        matches!(self.high, Some(h) if h < self.low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_follow_rfc3977() {
        assert!(MessageId::try_from("<45223423@example.com>").is_ok());
        assert!(MessageId::try_from("<a@b>").is_ok());
        assert!(MessageId::try_from("<>").is_err());
        assert!(MessageId::try_from("45223423@example.com").is_err());
        assert!(MessageId::try_from("<a b@c>").is_err());
        assert!(MessageId::try_from("<a>b@c>").is_err());
        let long = format!("<{}@x>", "a".repeat(247));
        assert!(MessageId::try_from(long.as_str()).is_err());
    }

    #[test]
    fn group_names_follow_rfc3977() {
        assert!(GroupName::try_from("misc.test").is_ok());
        assert!(GroupName::try_from("alt.binaries.x-y_z+1").is_ok());
        assert!(GroupName::try_from("misc*").is_err());
        assert!(GroupName::try_from("misc..test").is_err());
        assert!(GroupName::try_from(".misc").is_err());
        assert!(GroupName::try_from("").is_err());
        assert!(GroupName::try_from("a b").is_err());
    }
}
