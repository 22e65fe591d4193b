//! The header block of an article (RFC 5322 §2.2, §3.6.8 as narrowed by
//! RFC 5536 §2.2): fields, folding, and where the body starts.
//!
//! Values are kept as raw bytes, folds and all, so that a header we do not
//! rewrite is stored exactly as it arrived. RFC 6532 lets header values carry
//! UTF-8; we go further and accept any octet but NUL, CR and LF, because a
//! server that refuses 8-bit headers loses real traffic.

use nom::{
    IResult,
    bytes::complete::{tag, take_till, take_while1},
    character::complete::{crlf, one_of},
    combinator::recognize,
    multi::many0_count,
    sequence::{pair, terminated, tuple},
};

use std::borrow::Cow;

use super::ArticleError;

/// One header field as it appeared in the article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field name, case preserved (compare with `eq_ignore_ascii_case`).
    pub name: &'a [u8],
    /// Everything after the colon up to the final CRLF, folds included.
    pub value: &'a [u8],
    /// The whole field, name to final CRLF inclusive, byte for byte.
    pub line: &'a [u8],
}

impl<'a> Field<'a> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The value unfolded (see [`unfold`]).
    pub fn unfolded(&self) -> Cow<'a, [u8]> {
        unfold(self.value)
    }
}

/// `ftext = %d33-57 / %d59-126` (RFC 5322 §3.6.8): printable US-ASCII but ":".
fn is_ftext(c: u8) -> bool {
    (33..=126).contains(&c) && c != b':'
}

fn is_line_end(c: u8) -> bool {
    c == b'\r' || c == b'\n'
}

/// One header field, folding included (RFC 5322 §3.6.8, §2.2.3):
///
/// ```text
/// optional-field = field-name ":" unstructured CRLF
/// field-name     = 1*ftext
/// FWS            = [*WSP CRLF] 1*WSP   ; a fold: CRLF followed by SP or HTAB
/// ```
///
/// The value is taken as opaque octets here; the fields we interpret get
/// their own grammar once unfolded.
pub fn field(input: &[u8]) -> IResult<&[u8], Field<'_>> {
    let (rest, (name, _, value)) = tuple((
        take_while1(is_ftext),
        tag(":"),
        terminated(
            recognize(pair(
                take_till(is_line_end),
                many0_count(tuple((crlf, one_of(" \t"), take_till(is_line_end)))),
            )),
            crlf,
        ),
    ))(input)?;
    let line = input.get(..input.len() - rest.len()).unwrap_or_default();
    Ok((rest, Field { name, value, line }))
}

/// Says why [`field`] refused the line at the start of `input`, in words a
/// posting client can act on.
fn diagnose(input: &[u8]) -> String {
    let end = input.iter().position(|&c| is_line_end(c));
    let line = input.get(..end.unwrap_or(input.len())).unwrap_or_default();
    let shown = String::from_utf8_lossy(line.get(..40).unwrap_or(line)).into_owned();
    if input.first().is_some_and(|&c| c == b' ' || c == b'\t') {
        return "header block begins with a continuation line".to_owned();
    }
    let Some(colon) = line.iter().position(|&c| c == b':') else {
        return format!("header line without a colon: {shown}");
    };
    let name = line.get(..colon).unwrap_or_default();
    if name.is_empty() || !name.iter().all(|&c| is_ftext(c)) {
        return format!("invalid header name: {shown}");
    }
    // The name and colon are fine, so the value broke the grammar: a CR or
    // LF that is not part of a CRLF (here or in a continuation line), or a
    // last line with no CRLF at all.
    if end.is_some() {
        format!("bare CR or LF in header: {shown}")
    } else {
        format!("header line not terminated by CRLF: {shown}")
    }
}

/// An article cut into its header fields and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub fields: Vec<Field<'a>>,
    /// The header block as received, without the blank line.
    pub head: &'a [u8],
    /// Everything after the blank line (empty when there was none).
    pub body: &'a [u8],
}

/// Parses the header block of `raw` strictly (RFC 5322 §2.1:
/// `message = fields [CRLF body]`, with RFC 5536 §2.1 requiring at least one
/// field). The blank line may be missing when there is no body: the article
/// then ends right after its last field.
pub fn parse_article(raw: &[u8]) -> Result<Parsed<'_>, ArticleError> {
    if raw.is_empty() {
        return Err(ArticleError::Malformed("empty article".to_owned()));
    }
    // Enough for a typical article's fields without growing.
    let mut fields = Vec::with_capacity(24);
    let mut rest = raw;
    while !rest.is_empty() && !rest.starts_with(b"\r\n") {
        match field(rest) {
            Ok((next, f)) => {
                // NUL is not an octet any header grammar admits, and it
                // truncates values in every C reader downstream.
                if f.value.contains(&0) {
                    return Err(ArticleError::Malformed(format!(
                        "NUL in header {}",
                        String::from_utf8_lossy(f.name)
                    )));
                }
                fields.push(f);
                rest = next;
            }
            Err(_) => return Err(ArticleError::Malformed(diagnose(rest))),
        }
    }
    if fields.is_empty() {
        return Err(ArticleError::Malformed(
            "article has no header fields".to_owned(),
        ));
    }
    let head = raw.get(..raw.len() - rest.len()).unwrap_or_default();
    let body = rest.get(2..).unwrap_or_default();
    Ok(Parsed { fields, head, body })
}

/// The fields of a header block, skipping any line that does not parse.
/// For stored articles, which were checked on the way in; a reader must not
/// fail on one odd line.
pub fn lenient_fields(head: &[u8]) -> impl Iterator<Item = Field<'_>> {
    let mut rest = head;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            match field(rest) {
                Ok((next, f)) => {
                    rest = next;
                    return Some(f);
                }
                Err(_) => {
                    // Skip to the next line that is not a continuation.
                    loop {
                        rest = match rest.windows(2).position(|w| w == b"\r\n") {
                            Some(p) => rest.get(p + 2..).unwrap_or_default(),
                            None => &[],
                        };
                        if !matches!(rest.first(), Some(b' ' | b'\t')) {
                            break;
                        }
                    }
                }
            }
        }
        None
    })
}

/// RFC 5322 §2.2.3 unfolding ("removing any CRLF that is immediately
/// followed by WSP"), then RFC 3977 §8.3.2's sanitising: every remaining
/// TAB, CR or LF becomes a space. Leading whitespace, the customary space
/// after the colon, is dropped. Most values hold none of TAB, CR and LF,
/// and are returned as they are, without a copy.
pub fn unfold(value: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr3(b'\t', b'\r', b'\n', value).is_none() {
        let start = value.iter().position(|&c| c != b' ').unwrap_or(value.len());
        return Cow::Borrowed(value.get(start..).unwrap_or_default());
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while let Some(&c) = value.get(i) {
        if c == b'\r' && value.get(i + 1) == Some(&b'\n') {
            i += 2;
            continue;
        }
        out.push(if matches!(c, b'\t' | b'\r' | b'\n') {
            b' '
        } else {
            c
        });
        i += 1;
    }
    let start = out.iter().position(|&c| c != b' ').unwrap_or(out.len());
    out.drain(..start);
    Cow::Owned(out)
}

/// Removes surrounding SP/HTAB (after unfolding, the only whitespace left).
pub fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_keeps_its_folds_and_line() {
        let input = b"Subject: one\r\n two\r\n\tthree\r\nFrom: x\r\n";
        let (rest, f) = field(input).unwrap();
        assert_eq!(f.name, b"Subject");
        assert_eq!(f.value, b" one\r\n two\r\n\tthree");
        assert_eq!(f.line, b"Subject: one\r\n two\r\n\tthree\r\n");
        assert_eq!(rest, b"From: x\r\n");
        assert_eq!(&*f.unfolded(), b"one two three");
    }

    #[test]
    fn an_empty_value_is_a_field() {
        let (_, f) = field(b"X-Empty:\r\n").unwrap();
        assert_eq!(f.value, b"");
    }

    #[test]
    fn parse_article_splits_head_and_body() {
        let p = parse_article(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore\r\n").unwrap();
        assert_eq!(p.fields.len(), 2);
        assert_eq!(p.head, b"A: 1\r\nB: 2\r\n");
        assert_eq!(p.body, b"body\r\n\r\nmore\r\n");
    }

    #[test]
    fn parse_article_accepts_a_missing_blank_line() {
        let p = parse_article(b"A: 1\r\n").unwrap();
        assert_eq!(p.head, b"A: 1\r\n");
        assert_eq!(p.body, b"");
    }

    #[test]
    fn malformed_header_blocks_say_why() {
        let why = |raw: &[u8]| match parse_article(raw) {
            Err(ArticleError::Malformed(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(why(b" A: 1\r\n\r\n").contains("continuation"));
        assert!(why(b"A: 1\r\nno colon here\r\n\r\n").contains("without a colon"));
        assert!(why(b"Bad Name: 1\r\n\r\n").contains("invalid header name"));
        assert!(why(b": 1\r\n\r\n").contains("invalid header name"));
        assert!(why(b"A: 1\rx\r\n\r\n").contains("bare CR"));
        assert!(why(b"A: 1").contains("not terminated"));
        assert!(why(b"A: \x001\r\n\r\n").contains("NUL"));
        assert!(why(b"\r\nbody\r\n").contains("no header"));
        assert!(why(b"").contains("empty"));
    }

    #[test]
    fn lenient_fields_skip_bad_lines() {
        let names: Vec<_> = lenient_fields(b"A: 1\r\nbad\r\n cont\r\nB: 2\r\n")
            .map(|f| f.name)
            .collect();
        assert_eq!(names, vec![&b"A"[..], &b"B"[..]]);
    }

    #[test]
    fn unfold_sanitises_for_overview() {
        assert_eq!(&*unfold(b"  a\tb\r\n c"), b"a b c");
        assert_eq!(&*unfold(b"  a b "), b"a b ");
        assert_eq!(&*unfold(b"   "), b"");
        assert_eq!(&*unfold(b""), b"");
        assert_eq!(trim(b" \t x y \t"), b"x y");
        assert_eq!(trim(b"   "), b"");
    }
}
