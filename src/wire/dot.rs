//! Dot-stuffing of multi-line data blocks (RFC 3977 §3.1.1). Pure.
//! Un-stuffing happens as blocks are read, in `connection::read_block`.

/// Appends `text` (CRLF-terminated lines) to `out` as a dot-stuffed data
/// block: every line that begins with `.` gets one more, a missing final
/// CRLF is supplied, and the terminating `.CRLF` is written.
///
/// The text is copied in runs between the lines that need a dot, found
/// with one search for `\n.`: a feeder stuffs every article it sends, and
/// copying it line by line took a sixth of a flooding server's CPU.
pub fn stuff(text: &[u8], out: &mut Vec<u8>) {
    out.reserve(text.len() + 8);
    if text.first() == Some(&b'.') {
        out.push(b'.');
    }
    let mut from = 0;
    for newline in memchr::memmem::find_iter(text, b"\n.") {
        out.extend_from_slice(&text[from..=newline]);
        out.push(b'.');
        from = newline + 1;
    }
    out.extend_from_slice(&text[from..]);
    if !text.is_empty() && !text.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
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
    fn a_leading_dot_and_dots_on_consecutive_lines_are_stuffed() {
        assert_eq!(stuffed(".\r\n.\r\n.x"), "..\r\n..\r\n..x\r\n.\r\n");
        assert_eq!(stuffed("a.b\r\nc\r\n"), "a.b\r\nc\r\n.\r\n");
    }

    #[test]
    fn stuffs_as_a_line_by_line_copy_does() {
        // The line-by-line rule, written out, against the runs above.
        fn by_lines(text: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            for line in text.split_inclusive(|&b| b == b'\n') {
                if line[0] == b'.' {
                    out.push(b'.');
                }
                out.extend_from_slice(line);
            }
            if !text.is_empty() && !text.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b".\r\n");
            out
        }
        let pieces: [&[u8]; 6] = [b".", b"\r\n", b"\n", b"a", b"..", b"\r"];
        // Every text of up to five pieces.
        let mut texts: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = (texts.iter())
                .flat_map(|t| pieces.iter().map(move |p| [t.as_slice(), p].concat()))
                .collect();
            texts.extend(longer);
        }
        texts.sort();
        texts.dedup();
        for text in &texts {
            let mut out = Vec::new();
            stuff(text, &mut out);
            assert_eq!(out, by_lines(text), "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn a_missing_final_crlf_is_supplied() {
        assert_eq!(stuffed("a\r\n."), "a\r\n..\r\n.\r\n");
    }
}
