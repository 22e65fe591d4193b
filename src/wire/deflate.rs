//! The DEFLATE layer of RFC 8054 (COMPRESS): raw deflate (RFC 1951, no
//! zlib header) both ways, each burst of output ended with a sync flush so
//! the client can decompress every response as soon as it arrives.
//!
//! This is the synchronous half: turning bytes into bytes. `Connection`
//! owns one once COMPRESS has succeeded, reads compressed input into it and
//! writes what it compresses.

use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Compression level for responses: cheap on the CPU, and (RFC 8054 §3)
/// already a good ratio on NNTP's text.
const LEVEL: u32 = 3;

/// Compressed input read in one go.
const RAW_CHUNK: usize = 16 * 1024;

pub struct Deflate {
    inflate: Decompress,
    deflate: Compress,
    /// Compressed input from the client, from `raw_pos` on not yet
    /// inflated.
    raw_in: Vec<u8>,
    raw_pos: usize,
    /// The last inflate filled all the room it had: the decompressor may
    /// hold more output, even with all input consumed.
    full: bool,
    /// The client ended its deflate stream: nothing more can follow.
    ended: bool,
    /// Compressed output of one flush.
    raw_out: Vec<u8>,
}

impl Deflate {
    /// A layer whose first input is `unread` (what the client sent after
    /// COMPRESS before it saw 206: compressed already, if anything).
    pub fn new(unread: Vec<u8>) -> Deflate {
        Deflate {
            inflate: Decompress::new(false),
            deflate: Compress::new(Compression::new(LEVEL), false),
            raw_in: unread,
            raw_pos: 0,
            full: false,
            ended: false,
            raw_out: Vec::new(),
        }
    }

    /// Whether the client ended its stream (read as end of input).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether inflating may give more without reading: compressed input
    /// waits, or the last inflate ran out of room (the decompressor keeps
    /// what did not fit, after taking in all the input it was given).
    pub fn has_pending(&self) -> bool {
        self.raw_pos < self.raw_in.len() || self.full
    }

    /// Room for compressed input read from the socket: the buffer to read
    /// into, emptied of what has been inflated.
    pub fn input_space(&mut self) -> &mut Vec<u8> {
        if self.raw_pos == self.raw_in.len() {
            self.raw_in.clear();
            self.raw_pos = 0;
            if self.raw_in.capacity() > 4 * RAW_CHUNK {
                self.raw_in = Vec::new();
            }
        }
        self.raw_in.reserve(RAW_CHUNK);
        &mut self.raw_in
    }

    /// Inflates waiting input into the spare capacity of `out` (never
    /// growing it, so a small input that inflates hugely costs no more
    /// memory than plain input would); returns the octets added. Zero with
    /// input consumed means the client's bytes so far were only the start
    /// of a block: read more. Corrupt input is an `InvalidData` error, on
    /// which the connection must close (RFC 8054 §2.2.2).
    pub fn inflate_into(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let before_in = self.inflate.total_in();
        let before_out = out.len();
        let room = out.capacity() - out.len();
        let status = self
            .inflate
            .decompress_vec(&self.raw_in[self.raw_pos..], out, FlushDecompress::None)
            .map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad DEFLATE data: {e}"))
            })?;
        self.raw_pos += (self.inflate.total_in() - before_in) as usize;
        let produced = out.len() - before_out;
        self.full = room > 0 && produced == room;
        if status == Status::StreamEnd {
            self.ended = true;
            self.full = false;
            self.raw_pos = self.raw_in.len();
        }
        Ok(produced)
    }

    /// Compresses `plain` and ends it with a sync flush; the octets to
    /// send (borrowed until the next call).
    pub fn compress(&mut self, plain: &[u8]) -> io::Result<&[u8]> {
        self.raw_out.clear();
        let mut pos = 0;
        loop {
            // Text shrinks; room for a little more than the input covers
            // incompressible data too in one or two turns.
            self.raw_out.reserve((plain.len() - pos) / 2 + 64);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&plain[pos..], &mut self.raw_out, FlushCompress::Sync)
                .map_err(|e| io::Error::other(format!("DEFLATE failed: {e}")))?;
            pos += (self.deflate.total_in() - before) as usize;
            // The flush is complete once all input is in and the output
            // was not filled to the brim.
            if pos == plain.len() && self.raw_out.len() < self.raw_out.capacity() {
                break;
            }
        }
        Ok(&self.raw_out)
    }

    /// Lets go of a large output buffer after a big response.
    pub fn shrink(&mut self) {
        if self.raw_out.capacity() > 4 * RAW_CHUNK {
            self.raw_out = Vec::new();
        }
    }
}

/// The client's end of the layer, for our own clients (the feeder, the
/// bench): requests are deflated on the way out, answers inflated and
/// taken a line at a time. No I/O here: `connection::read_deflated_line`
/// reads the socket into `input_space` whenever `next_line` has no whole
/// line to give.
pub struct ClientLayer {
    layer: Deflate,
    /// Inflated answers, from `at` on not yet taken.
    plain: Vec<u8>,
    at: usize,
}

impl ClientLayer {
    /// `unread`: what the caller had read past the 206 line (compressed
    /// already).
    pub fn new(unread: Vec<u8>) -> ClientLayer {
        ClientLayer {
            layer: Deflate::new(unread),
            plain: Vec::new(),
            at: 0,
        }
    }

    /// Whether a whole line is inflated and waiting.
    pub fn has_line(&self) -> bool {
        memchr::memchr(b'\n', &self.plain[self.at..]).is_some()
    }

    /// Appends the next line, LF included, to `line`; false when more
    /// compressed input must be read first. A line longer than `max` is
    /// an `InvalidData` error, as is corrupt input.
    pub fn next_line(&mut self, line: &mut Vec<u8>, max: usize) -> io::Result<bool> {
        loop {
            let waiting = &self.plain[self.at..];
            if let Some(end) = memchr::memchr(b'\n', waiting) {
                line.extend_from_slice(&waiting[..=end]);
                self.at += end + 1;
                return Ok(true);
            }
            if waiting.len() > max {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "answer line too long",
                ));
            }
            self.plain.drain(..self.at);
            self.at = 0;
            self.plain.reserve(64 * 1024);
            if !self.layer.has_pending() || self.layer.inflate_into(&mut self.plain)? == 0 {
                return Ok(false);
            }
        }
    }

    /// Where to read compressed input into.
    pub fn input_space(&mut self) -> &mut Vec<u8> {
        self.layer.input_space()
    }

    /// Deflates a request (ended with a sync flush): the octets to send.
    pub fn compress(&mut self, request: &[u8]) -> io::Result<&[u8]> {
        self.layer.compress(request)
    }
}

/// The name of an algorithm, as RFC 8054 §5.3 spells one: 1 to 20 upper
/// case letters, digits, `-` or `_` (case matters).
pub fn is_algorithm_name(s: &str) -> bool {
    (1..=20).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peer's side: a plain zlib-style raw stream.
    fn client() -> (Compress, Decompress) {
        (
            Compress::new(Compression::default(), false),
            Decompress::new(false),
        )
    }

    fn deflate_sync(c: &mut Compress, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + 64);
        c.compress_vec(plain, &mut out, FlushCompress::Sync)
            .unwrap();
        out
    }

    fn inflate_all(d: &mut Decompress, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            out.reserve(64 * 1024);
            let before = d.total_in();
            d.decompress_vec(&raw[pos..], &mut out, FlushDecompress::Sync)
                .unwrap();
            pos += (d.total_in() - before) as usize;
            if pos == raw.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    #[test]
    fn each_flush_can_be_read_alone() {
        let (_, mut peer) = client();
        let mut z = Deflate::new(Vec::new());
        let a = z.compress(b"200 ready\r\n").unwrap().to_vec();
        assert_eq!(inflate_all(&mut peer, &a), b"200 ready\r\n");
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let b = z.compress(&big).unwrap().to_vec();
        assert!(inflate_all(&mut peer, &b) == big);
        let c = z.compress(b"").unwrap().to_vec();
        assert!(inflate_all(&mut peer, &c).is_empty());
    }

    #[test]
    fn input_in_pieces_comes_out_whole() {
        let (mut peer, _) = client();
        let raw = deflate_sync(&mut peer, b"GROUP local.test\r\nOVER 1-10\r\n");
        let mut z = Deflate::new(raw[..3].to_vec());
        let mut out = Vec::with_capacity(4096);
        let mut got = z.inflate_into(&mut out).unwrap();
        z.input_space().extend_from_slice(&raw[3..]);
        got += z.inflate_into(&mut out).unwrap();
        assert_eq!(got, out.len());
        assert_eq!(out, b"GROUP local.test\r\nOVER 1-10\r\n");
        assert!(!z.has_pending());
    }

    #[test]
    fn inflating_never_grows_the_buffer() {
        let (mut peer, _) = client();
        let raw = deflate_sync(&mut peer, &vec![b'a'; 1 << 20]);
        let mut z = Deflate::new(raw);
        let mut out = Vec::with_capacity(4096);
        let cap = out.capacity();
        let n = z.inflate_into(&mut out).unwrap();
        assert_eq!(n, cap);
        assert_eq!(out.capacity(), cap);
        // All of a megabyte is still to come, without another octet of
        // input: what did not fit waits in the decompressor.
        let mut total = n;
        while z.has_pending() {
            out.clear();
            total += z.inflate_into(&mut out).unwrap();
        }
        assert_eq!(total, 1 << 20);
    }

    #[test]
    fn garbage_is_invalid_data() {
        let mut z = Deflate::new(b"QUIT\r\n\xff\xff\xff\xff".to_vec());
        let mut out = Vec::with_capacity(4096);
        let e = z.inflate_into(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn the_client_end_reads_the_server_end_line_by_line() {
        let mut server = Deflate::new(Vec::new());
        let mut client = ClientLayer::new(Vec::new());
        // The server's answers to two requests, and a line cut in two.
        let raw: Vec<u8> = [
            server
                .compress(b"238 <a@b>\r\n239 <a@b>\r\n")
                .unwrap()
                .to_vec(),
            server.compress(b"431 <c").unwrap().to_vec(),
            server.compress(b"@d>\r\n").unwrap().to_vec(),
        ]
        .concat();
        let mut lines = Vec::new();
        let mut line = Vec::new();
        for octet in raw {
            client.input_space().push(octet);
            while client.next_line(&mut line, 512).unwrap() {
                lines.push(String::from_utf8(std::mem::take(&mut line)).unwrap());
            }
        }
        assert_eq!(lines, ["238 <a@b>\r\n", "239 <a@b>\r\n", "431 <c@d>\r\n"]);
        assert!(!client.has_line());
        // What the client sends, the server reads.
        let request = client.compress(b"CHECK <e@f>\r\n").unwrap().to_vec();
        let mut at_server = Deflate::new(request);
        let mut out = Vec::with_capacity(1024);
        at_server.inflate_into(&mut out).unwrap();
        assert_eq!(out, b"CHECK <e@f>\r\n");
        // An endless line is refused, not buffered for ever.
        let mut server = Deflate::new(Vec::new());
        let mut client = ClientLayer::new(server.compress(&[b'x'; 5000]).unwrap().to_vec());
        assert!(client.next_line(&mut line, 4096).is_err());
    }

    #[test]
    fn algorithm_names_follow_the_grammar() {
        assert!(is_algorithm_name("DEFLATE"));
        assert!(is_algorithm_name("X-SHRINK_2"));
        assert!(!is_algorithm_name("deflate"));
        assert!(!is_algorithm_name(""));
        assert!(!is_algorithm_name("ABCDEFGHIJKLMNOPQRSTU"));
        assert!(!is_algorithm_name("DE FLATE"));
    }
}
