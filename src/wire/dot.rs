//! Dot-stuffing of multi-line data blocks (RFC 3977 §3.1.1). Pure.
//! Un-stuffing happens as blocks are read, in `connection::read_block`.

/// Appends `text` (CRLF-terminated lines) to `out` as a dot-stuffed data
/// block: every line that begins with `.` gets one more, a missing final
/// CRLF is supplied, and the terminating `.CRLF` is written.
pub fn stuff(text: &[u8], out: &mut Vec<u8>) {
    out.reserve(text.len() + 8);
    let mut at_line_start = true;
    let mut rest = text;
    while !rest.is_empty() {
        if at_line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        match memchr(b'\n', rest) {
            Some(i) => {
                out.extend_from_slice(&rest[..=i]);
                rest = &rest[i + 1..];
                at_line_start = true;
            }
            None => {
                out.extend_from_slice(rest);
                out.extend_from_slice(b"\r\n");
                rest = &[];
            }
        }
    }
    out.extend_from_slice(b".\r\n");
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(s: &str) -> String {
        let mut out = Vec::new();
        stuff(s.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_starting_with_a_dot_get_another() {
        assert_eq!(stuffed("a\r\n.b\r\n..c\r\n"), "a\r\n..b\r\n...c\r\n.\r\n");
    }

    #[test]
    fn empty_text_is_just_the_terminator() {
        assert_eq!(stuffed(""), ".\r\n");
    }

    #[test]
    fn a_missing_final_crlf_is_supplied() {
        assert_eq!(stuffed("a\r\n."), "a\r\n..\r\n.\r\n");
    }
}
