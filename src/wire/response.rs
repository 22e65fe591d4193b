//! Responses (RFC 3977 §3.2): a status line and, for some, a multi-line data
//! block. Encoding writes into the caller's buffer; no I/O here.

use std::borrow::Cow;

use super::dot;

/// One response: `code text CRLF`, then a dot-stuffed block when `body` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub text: Cow<'static, str>,
    /// The data block's text (CRLF lines, not yet dot-stuffed).
    pub body: Option<Vec<u8>>,
}

impl Response {
    /// A single-line response.
    pub fn new(code: u16, text: impl Into<Cow<'static, str>>) -> Response {
        Response {
            code,
            text: text.into(),
            body: None,
        }
    }

    /// A multi-line response whose block is `body`.
    pub fn with_body(code: u16, text: impl Into<Cow<'static, str>>, body: Vec<u8>) -> Response {
        Response {
            code,
            text: text.into(),
            body: Some(body),
        }
    }

    /// True for the codes after which the connection is closed (205, 400).
    pub fn closes(&self) -> bool {
        self.code == super::codes::CLOSING || self.code == super::codes::SERVICE_DISCONTINUED
    }

    /// Appends the wire form to `out`. A status line never holds CR or LF:
    /// any in `text` (which can echo client input) become spaces.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.text.len() + 8 + self.body.as_ref().map_or(0, |b| b.len() + 8));
        out.extend_from_slice(itoa3(self.code).as_bytes());
        if !self.text.is_empty() {
            out.push(b' ');
            out.extend(
                self.text
                    .bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        }
        out.extend_from_slice(b"\r\n");
        if let Some(body) = &self.body {
            dot::stuff(body, out);
        }
    }
}

fn itoa3(code: u16) -> String {
    format!("{code:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_is_code_space_text_crlf() {
        let mut out = Vec::new();
        Response::new(411, "No such newsgroup").encode(&mut out);
        assert_eq!(out, b"411 No such newsgroup\r\n");
    }

    #[test]
    fn a_block_is_stuffed_and_terminated() {
        let mut out = Vec::new();
        Response::with_body(215, "list follows", b"a 1 1 y\r\n.x\r\n".to_vec()).encode(&mut out);
        assert_eq!(out, b"215 list follows\r\na 1 1 y\r\n..x\r\n.\r\n");
    }

    #[test]
    fn client_text_cannot_inject_a_line() {
        let mut out = Vec::new();
        Response::new(501, "bad\r\n200 ok").encode(&mut out);
        assert_eq!(out, b"501 bad  200 ok\r\n");
    }
}
