//! The one place that touches a socket: framing of command lines and
//! multi-line blocks (RFC 3977 §3.1), and buffered output.
//!
//! Framing comes before parsing: a command line is capped before any parser
//! sees it (a longer one is drained to its end and reported as `TooLong`, so
//! the session answers 501 and stays in step), and an article block is always
//! read to its terminating `.` even past the size limit (the excess is
//! dropped and reported), so a too-large article gets its error code and the
//! stream stays in step.
//!
//! Output is appended to a buffer and written in one go when the caller
//! flushes; the session flushes only when no complete command is waiting, so
//! a pipelined burst of commands costs one write.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::deflate::{ClientLayer, Deflate};
use super::parse::verb_is;
use super::response::Response;

/// A framed command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line without its CRLF (or bare LF).
    Line(Vec<u8>),
    /// The line was longer than the limit; it has been drained.
    TooLong,
}

/// A framed multi-line block, dot-unstuffed, each line ending in CRLF.
#[derive(Debug, Default)]
pub struct Block {
    pub data: Vec<u8>,
    /// The block was larger than the limit: `data` holds only its start.
    pub too_big: bool,
    /// The block's full size in octets (as unstuffed, CRLF lines).
    pub size: usize,
}

/// A block being read (`Connection::read_block`), taken a buffer at a
/// time: a streaming session can see that the rest of an article has not
/// arrived yet, and do something else meanwhile.
pub struct BlockReader {
    block: Block,
    limit: usize,
    /// True while inside a line whose start has already been consumed (a
    /// line longer than what was buffered).
    mid_line: bool,
}

impl BlockReader {
    pub fn new(limit: usize) -> BlockReader {
        BlockReader {
            block: Block {
                // Most articles fit; saves the first few doublings.
                data: Vec::with_capacity(limit.min(4096)),
                too_big: false,
                size: 0,
            },
            limit,
            mid_line: false,
        }
    }

    /// Takes the block's lines that `conn` has buffered; the block once its
    /// terminating line is among them, `None` while more must be read.
    pub fn take_buffered<S>(&mut self, conn: &mut Connection<S>) -> Option<Block> {
        let block = &mut self.block;
        // Lines kept as they came (CRLF-ended, not dot-stuffed, within the
        // limit) are copied a run at a time, `conn.buf[run..conn.pos]`: a
        // copy per line cost ~6% of a streaming session's time.
        let mut run = conn.pos;
        loop {
            let unread = &conn.buf[conn.pos..];
            let Some(i) = memchr::memchr(b'\n', unread) else {
                block.data.extend_from_slice(&conn.buf[run..conn.pos]);
                let unread = &conn.buf[conn.pos..];
                // A long line in progress: move what we have (all but a
                // possible trailing CR) out of the buffer, so memory stays
                // bounded however long the line.
                let keep = usize::from(unread.last() == Some(&b'\r'));
                let take = unread.len() - keep;
                if take > 0 && unread.len() > READ_CHUNK {
                    let mut chunk = &unread[..take];
                    if !self.mid_line && chunk.first() == Some(&b'.') {
                        chunk = &chunk[1..];
                    }
                    block.size += chunk.len();
                    if !block.too_big && block.size + 2 <= self.limit {
                        block.data.extend_from_slice(chunk);
                    } else {
                        block.too_big = true;
                    }
                    self.mid_line = true;
                    conn.pos += take;
                }
                return None;
            };
            let mut line = &unread[..i];
            let crlf = line.last() == Some(&b'\r');
            if crlf {
                line = &line[..line.len() - 1];
            }
            let mut stuffed = false;
            if !self.mid_line {
                if line == b"." {
                    block.data.extend_from_slice(&conn.buf[run..conn.pos]);
                    conn.pos += i + 1;
                    return Some(std::mem::take(block));
                }
                if line.first() == Some(&b'.') {
                    line = &line[1..];
                    stuffed = true;
                }
            }
            block.size += line.len() + 2;
            let fits = !block.too_big && block.size <= self.limit;
            let as_came = fits && crlf && !stuffed && !self.mid_line;
            if !as_came {
                // Changed, or past the limit: the run so far, then this
                // line on its own.
                block.data.extend_from_slice(&conn.buf[run..conn.pos]);
                if fits {
                    block.data.extend_from_slice(line);
                    block.data.extend_from_slice(b"\r\n");
                } else {
                    block.too_big = true;
                }
                run = conn.pos + i + 1;
            }
            self.mid_line = false;
            conn.pos += i + 1;
        }
    }
}

/// A byte stream that can have the kernel acknowledge at once what it has
/// received (TCP's quick-ack); by default, one that can't.
pub trait QuickAck {
    fn quick_ack(&self) {}
}

impl QuickAck for tokio::io::DuplexStream {}

pub struct Connection<S> {
    stream: S,
    /// Input has been read since output last went out, so the kernel may
    /// be holding back its acknowledgement: see `fill`.
    unacked: bool,
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    pos: usize,
    out: Vec<u8>,
    max_line: usize,
    /// The RFC 8054 compression layer, once COMPRESS has succeeded: input
    /// is inflated into `buf`, output deflated on its way out.
    deflate: Option<Box<Deflate>>,
}

const READ_CHUNK: usize = 64 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin + QuickAck> Connection<S> {
    /// `max_line` is the longest command line accepted, CRLF included.
    pub fn new(stream: S, max_line: usize) -> Connection<S> {
        Connection {
            stream,
            unacked: false,
            buf: Vec::with_capacity(1024),
            pos: 0,
            out: Vec::new(),
            max_line,
            deflate: None,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Starts compressing both ways (RFC 8054): call it right after the
    /// 206 answer has been flushed. Input already read past the COMPRESS
    /// line is taken as compressed (a client must not send more before it
    /// sees 206, §2.2.1).
    pub fn start_deflate(&mut self) {
        let unread = self.buf.split_off(self.pos);
        self.deflate = Some(Box::new(Deflate::new(unread)));
    }

    /// Gives the stream back, with the input read from it but not yet
    /// framed, to put a layer (TLS) beneath the protocol. Output not yet
    /// flushed is dropped: flush first. Never called once compression is
    /// active (STARTTLS is refused then, RFC 8054 §2.2.2).
    pub fn into_parts(self) -> (S, Vec<u8>) {
        let mut unread = self.buf;
        unread.drain(..self.pos);
        (self.stream, unread)
    }

    /// Reads more bytes into the buffer; false at end of stream. Cancel
    /// safe: bytes read are kept for the next call.
    pub async fn read_more(&mut self) -> io::Result<bool> {
        self.fill().await
    }

    /// Reads more bytes into the buffer; false at end of stream.
    ///
    /// Before it waits, input read since the last output is acknowledged
    /// at once. Linux delays the acknowledgement of a short segment while
    /// we have nothing to say, and a client that leaves Nagle's algorithm
    /// on and writes an article in pieces (Python's nntplib writes 8 KiB at
    /// a time) holds each piece until the one before is acknowledged:
    /// every POST of more than 8 KiB took ~44 ms. Once we have answered,
    /// the answer carries the acknowledgement, so a peer offering articles
    /// in lock-step (IHAVE, then the article) costs no acknowledgement of
    /// its own: on loopback each was a segment sent and received, and
    /// asking for one after every read cost lock-step IHAVE ~5-10% on the
    /// 2-core test VM. The kernel leaves quick-ack mode by itself, so it is
    /// asked again each time.
    async fn fill(&mut self) -> io::Result<bool> {
        if std::mem::take(&mut self.unacked) {
            self.stream.quick_ack();
        }
        let filled = self.fill_buffer().await;
        if let Ok(true) = filled {
            self.unacked = true;
        }
        filled
    }

    async fn fill_buffer(&mut self) -> io::Result<bool> {
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos > self.buf.len() / 2) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        // Grow by doubling from a small start: an idle connection keeps a
        // few KiB, a connection streaming articles reads in large chunks.
        let want = self.buf.len().clamp(4096, READ_CHUNK);
        self.buf.reserve(want);
        let Some(z) = self.deflate.as_deref_mut() else {
            let n = self.stream.read_buf(&mut self.buf).await?;
            return Ok(n > 0);
        };
        // Cancel safe as the plain read is: compressed bytes read are kept
        // in the layer, and inflating never awaits.
        loop {
            if z.has_pending() && z.inflate_into(&mut self.buf)? > 0 {
                return Ok(true);
            }
            if z.ended() {
                return Ok(false);
            }
            if self.stream.read_buf(z.input_space()).await? == 0 {
                return Ok(false);
            }
        }
    }

    /// Gives back a large read buffer once it is empty (after a big
    /// article), so an idle connection holds little memory.
    pub fn shrink_if_idle(&mut self) {
        if self.pos == self.buf.len() && self.buf.capacity() > 4 * READ_CHUNK {
            self.buf = Vec::with_capacity(4096);
            self.pos = 0;
        }
    }

    /// True when a complete line is already buffered: the next command can
    /// be answered without waiting, so output need not be flushed yet.
    pub fn has_buffered_line(&self) -> bool {
        memchr::memchr(b'\n', &self.buf[self.pos..]).is_some()
    }

    /// True when the buffered input begins with a whole TAKETHIS: its
    /// command line and its article through the terminating dot line
    /// (CRLF-terminated, as a peer sends it), after at most
    /// `CHECKS_SKIPPED` whole CHECK lines (a peer pipelining CHECK and
    /// TAKETHIS sends them in turn). A streaming session tells the writer
    /// so: its next hand-over is then microseconds away.
    pub fn has_buffered_takethis(&self) -> bool {
        const CHECKS_SKIPPED: usize = 4;
        let mut unread = &self.buf[self.pos..];
        for _ in 0..=CHECKS_SKIPPED {
            let Some(eol) = memchr::memchr(b'\n', unread) else {
                return false;
            };
            let line = &unread[..eol];
            unread = &unread[eol + 1..];
            if verb_is(line, b"TAKETHIS") {
                // The dot line may be the first.
                return unread.starts_with(b".\r\n")
                    || memchr::memmem::find(unread, b"\n.\r\n").is_some();
            }
            if !verb_is(line, b"CHECK") {
                return false;
            }
        }
        false
    }

    /// Reads one command line. `Ok(None)` at a clean end of stream (nothing
    /// buffered); a partial line at end of stream is an `UnexpectedEof`.
    /// Once a line has begun, the rest of it must come within
    /// `line_timeout` (a `TimedOut` error otherwise): a client sending a
    /// byte at a time cannot hold the connection for the whole idle time.
    pub async fn read_line(&mut self, line_timeout: Duration) -> io::Result<Option<Line>> {
        let mut draining = false;
        let mut begun: Option<tokio::time::Instant> = None;
        loop {
            let unread = &self.buf[self.pos..];
            if let Some(i) = memchr::memchr(b'\n', unread) {
                let too_long = draining || i + 1 > self.max_line;
                let mut line = &unread[..i];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let result = if too_long {
                    Line::TooLong
                } else {
                    Line::Line(line.to_vec())
                };
                self.pos += i + 1;
                return Ok(Some(result));
            }
            if unread.len() > self.max_line {
                // Too long already: forget what we have and drain to the LF.
                draining = true;
                self.pos = self.buf.len();
            }
            let partial = draining || self.pos < self.buf.len();
            let filled =
                match (partial, begun) {
                    (false, _) => self.fill().await?,
                    (true, None) => {
                        begun = Some(tokio::time::Instant::now() + line_timeout);
                        continue;
                    }
                    (true, Some(deadline)) => tokio::time::timeout_at(deadline, self.fill())
                        .await
                        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??,
                };
            if !filled {
                return if self.pos == self.buf.len() && !draining {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    /// Reads a dot-terminated block (RFC 3977 §3.1.1), un-stuffing it and
    /// normalising line ends to CRLF. Keeps at most `limit` octets; the rest
    /// is read and dropped. End of stream before the terminator is an
    /// `UnexpectedEof` error (the caller stores nothing).
    pub async fn read_block(&mut self, limit: usize) -> io::Result<Block> {
        self.finish_block(BlockReader::new(limit)).await
    }

    /// Reads the rest of a block begun with `BlockReader::take_buffered`.
    pub async fn finish_block(&mut self, mut reader: BlockReader) -> io::Result<Block> {
        loop {
            if let Some(block) = reader.take_buffered(self) {
                return Ok(block);
            }
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Appends a response to the output buffer.
    pub fn send(&mut self, response: &Response) {
        response.encode(&mut self.out);
    }

    /// Appends raw bytes to the output buffer.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Bytes waiting to be written.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Writes everything buffered.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            match self.deflate.as_deref_mut() {
                None => self.stream.write_all(&self.out).await?,
                Some(z) => {
                    self.stream.write_all(z.compress(&self.out)?).await?;
                    z.shrink();
                }
            }
            self.out.clear();
            self.unacked = false;
            // Don't keep a huge buffer around after one big answer.
            if self.out.capacity() > 1 << 20 {
                self.out.shrink_to(64 * 1024);
            }
        }
        self.stream.flush().await
    }

    /// Flushes and shuts down the write side.
    pub async fn close(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.stream.shutdown().await
    }
}

/// Reads one answer through a client's DEFLATE layer (our feeder's, the
/// bench's): the line, LF included, is appended to `line`, compressed
/// octets are read from `r` as needed. Returns the line's length (0 at end
/// of stream) and the compressed octets read.
pub async fn read_deflated_line<R: AsyncRead + Unpin>(
    z: &mut ClientLayer,
    r: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<(usize, usize)> {
    let start = line.len();
    let mut read = 0;
    loop {
        if z.next_line(line, max)? {
            return Ok((line.len() - start, read));
        }
        let n = r.read_buf(z.input_space()).await?;
        if n == 0 {
            return Ok((0, read));
        }
        read += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A stream that counts the quick acknowledgements asked of it.
    struct Counted {
        inner: tokio::io::DuplexStream,
        acks: Arc<AtomicUsize>,
    }

    impl QuickAck for Counted {
        fn quick_ack(&self) {
            self.acks.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    fn counted() -> (
        tokio::io::DuplexStream,
        Connection<Counted>,
        Arc<AtomicUsize>,
    ) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let acks = Arc::new(AtomicUsize::new(0));
        let server = Counted {
            inner: server,
            acks: acks.clone(),
        };
        (client, Connection::new(server, 512), acks)
    }

    const SECS: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn input_that_is_answered_is_not_acknowledged_apart() {
        // A lock-step IHAVE peer: every message read is answered before
        // the next is waited for, and the answer carries the ACK.
        let (mut client, mut c, acks) = counted();
        for n in 0..3 {
            client
                .write_all(format!("IHAVE <{n}@x>\r\n").as_bytes())
                .await
                .unwrap();
            assert!(matches!(
                c.read_line(SECS).await.unwrap(),
                Some(Line::Line(_))
            ));
            c.send_raw(b"335 Send it\r\n");
            c.flush().await.unwrap();
            client
                .write_all(b"Subject: s\r\n\r\nbody\r\n.\r\n")
                .await
                .unwrap();
            let block = c.read_block(1 << 20).await.unwrap();
            assert_eq!(block.data, b"Subject: s\r\n\r\nbody\r\n");
            c.send_raw(b"235 OK\r\n");
            c.flush().await.unwrap();
        }
        assert_eq!(acks.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn input_not_yet_answered_is_acknowledged_before_waiting() {
        // The first half of an article (nntplib writes 8 KiB at a time,
        // Nagle holding the next piece until this one is acknowledged).
        let (mut client, mut c, acks) = counted();
        client
            .write_all(b"Subject: s\r\n\r\nfirst half\r\n")
            .await
            .unwrap();
        let reader = tokio::spawn(async move {
            let block = c.read_block(1 << 20).await.unwrap();
            (c, block)
        });
        tokio::time::timeout(SECS, async {
            while acks.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the first half is acknowledged while the rest is awaited");
        client.write_all(b"second half\r\n.\r\n").await.unwrap();
        let (mut c, block) = reader.await.unwrap();
        assert_eq!(
            block.data,
            b"Subject: s\r\n\r\nfirst half\r\nsecond half\r\n"
        );
        assert_eq!(acks.load(Ordering::SeqCst), 1);
        c.send_raw(b"240 OK\r\n");
        c.flush().await.unwrap();
        // Commands read and not answered yet (a peer pipelining CHECKs):
        // acknowledged before the next wait, once.
        client
            .write_all(b"CHECK <1@x>\r\nCHECK <2@x>\r\n")
            .await
            .unwrap();
        assert!(matches!(
            c.read_line(SECS).await.unwrap(),
            Some(Line::Line(_))
        ));
        assert!(matches!(
            c.read_line(SECS).await.unwrap(),
            Some(Line::Line(_))
        ));
        client.write_all(b"CHECK <3@x>\r\n").await.unwrap();
        assert!(matches!(
            c.read_line(SECS).await.unwrap(),
            Some(Line::Line(_))
        ));
        assert_eq!(acks.load(Ordering::SeqCst), 2);
    }

    async fn conn(input: &[u8]) -> Connection<tokio::io::DuplexStream> {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut client = client;
        client.write_all(input).await.unwrap();
        drop(client);
        Connection::new(server, 512)
    }

    #[tokio::test]
    async fn lines_are_split_on_crlf_and_bare_lf() {
        let mut c = conn(b"GROUP a\r\nDATE\nQUIT\r\n").await;
        assert_eq!(
            c.read_line(Duration::from_secs(5)).await.unwrap(),
            Some(Line::Line(b"GROUP a".to_vec()))
        );
        assert_eq!(
            c.read_line(Duration::from_secs(5)).await.unwrap(),
            Some(Line::Line(b"DATE".to_vec()))
        );
        assert_eq!(
            c.read_line(Duration::from_secs(5)).await.unwrap(),
            Some(Line::Line(b"QUIT".to_vec()))
        );
        assert_eq!(c.read_line(Duration::from_secs(5)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_long_line_is_drained_and_the_next_is_read() {
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\r\nDATE\r\n");
        let mut c = conn(&input).await;
        assert_eq!(
            c.read_line(Duration::from_secs(5)).await.unwrap(),
            Some(Line::TooLong)
        );
        assert_eq!(
            c.read_line(Duration::from_secs(5)).await.unwrap(),
            Some(Line::Line(b"DATE".to_vec()))
        );
    }

    #[tokio::test]
    async fn a_line_of_exactly_512_octets_is_accepted() {
        let mut input = vec![b'x'; 510];
        input.extend_from_slice(b"\r\n");
        let mut c = conn(&input).await;
        assert!(
            matches!(c.read_line(Duration::from_secs(5)).await.unwrap(), Some(Line::Line(l)) if l.len() == 510)
        );
    }

    /// What `has_buffered_takethis` says once `input` is buffered.
    async fn holds_takethis(input: &[u8]) -> bool {
        let mut c = conn(input).await;
        while c.read_more().await.unwrap() {}
        c.has_buffered_takethis()
    }

    #[tokio::test]
    async fn a_buffered_takethis_counts_only_whole() {
        let whole = b"TAKETHIS <a@b>\r\nSubject: x\r\n\r\nbody\r\n.\r\n";
        assert!(holds_takethis(whole).await);
        assert!(holds_takethis(b"takethis <a@b>\r\nS: x\r\n\r\nb\r\n.\r\nCHECK <c@d>\r\n").await);
        // An empty article is whole too (it gets 439).
        assert!(holds_takethis(b"TAKETHIS <a@b>\r\n.\r\n").await);
        // Not whole: no dot line yet, or only a stuffed one, or the dot
        // line not yet ended.
        assert!(!holds_takethis(&whole[..whole.len() - 3]).await);
        assert!(!holds_takethis(&whole[..whole.len() - 1]).await);
        assert!(!holds_takethis(b"TAKETHIS <a@b>\r\nS: x\r\n\r\n..\r\n").await);
        assert!(!holds_takethis(b"TAKETHIS <a@b>\r\n").await);
        assert!(!holds_takethis(b"TAKETHIS <a@b>").await);
        // After a few CHECKs (a peer pipelining them), but not after
        // another command or many CHECKs.
        let mut after = b"CHECK <c@d>\r\n".to_vec();
        after.extend_from_slice(whole);
        assert!(holds_takethis(&after).await);
        let mut after_date = b"DATE\r\n".to_vec();
        after_date.extend_from_slice(whole);
        assert!(!holds_takethis(&after_date).await);
        let mut after_many = b"CHECK <c@d>\r\n".repeat(5);
        after_many.extend_from_slice(whole);
        assert!(!holds_takethis(&after_many).await);
        assert!(!holds_takethis(b"CHECK <c@d>\r\nCHECK <e").await);
        assert!(!holds_takethis(b"TAKETHISX <a@b>\r\n.\r\n").await);
        assert!(!holds_takethis(b"").await);
        // Once the line before it is read, the TAKETHIS is at the front.
        let mut c = conn(&after_date).await;
        assert_eq!(
            c.read_line(Duration::from_secs(5)).await.unwrap(),
            Some(Line::Line(b"DATE".to_vec()))
        );
        assert!(c.has_buffered_takethis());
    }

    #[tokio::test]
    async fn a_block_taken_as_it_arrives_is_the_block() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut c = Connection::new(server, 512);
        let mut reader = BlockReader::new(1000);
        for piece in [&b"a\r\n..b\r\nc"[..], b"\r\n.", b"\r"] {
            client.write_all(piece).await.unwrap();
            assert!(c.read_more().await.unwrap());
            assert!(reader.take_buffered(&mut c).is_none());
        }
        client.write_all(b"\nNEXT\r\n").await.unwrap();
        assert!(c.read_more().await.unwrap());
        let b = reader.take_buffered(&mut c).expect("whole");
        assert_eq!(b.data, b"a\r\n.b\r\nc\r\n");
        assert_eq!(b.size, b.data.len());
        assert_eq!(
            c.read_line(Duration::from_secs(5)).await.unwrap(),
            Some(Line::Line(b"NEXT".to_vec()))
        );
        // The rest of a block begun that way.
        let mut reader = BlockReader::new(1000);
        client.write_all(b"x\r\n").await.unwrap();
        assert!(c.read_more().await.unwrap());
        assert!(reader.take_buffered(&mut c).is_none());
        client.write_all(b"y\r\n.\r\n").await.unwrap();
        let b = c.finish_block(reader).await.unwrap();
        assert_eq!(b.data, b"x\r\ny\r\n");
    }

    #[tokio::test]
    async fn blocks_are_unstuffed_and_normalised() {
        let mut c = conn(b"a\r\n..b\nc\r\n.\r\nNEXT\r\n").await;
        let b = c.read_block(1000).await.unwrap();
        assert_eq!(b.data, b"a\r\n.b\r\nc\r\n");
        assert!(!b.too_big);
        assert_eq!(
            c.read_line(Duration::from_secs(5)).await.unwrap(),
            Some(Line::Line(b"NEXT".to_vec()))
        );
    }

    #[tokio::test]
    async fn an_oversized_block_is_read_to_its_end() {
        let mut input = Vec::new();
        for _ in 0..100 {
            input.extend_from_slice(b"0123456789\r\n");
        }
        input.extend_from_slice(b".\r\nDATE\r\n");
        let mut c = conn(&input).await;
        let b = c.read_block(100).await.unwrap();
        assert!(b.too_big);
        assert_eq!(b.size, 1200);
        assert!(b.data.len() <= 100);
        assert_eq!(
            c.read_line(Duration::from_secs(5)).await.unwrap(),
            Some(Line::Line(b"DATE".to_vec()))
        );
    }

    #[tokio::test]
    async fn into_parts_hands_back_what_was_read_ahead() {
        let mut c = conn(b"STARTTLS\r\nGROUP x\r\n").await;
        assert_eq!(
            c.read_line(Duration::from_secs(5)).await.unwrap(),
            Some(Line::Line(b"STARTTLS".to_vec()))
        );
        let (_stream, unread) = c.into_parts();
        assert_eq!(unread, b"GROUP x\r\n");
    }

    #[tokio::test]
    async fn a_block_cut_short_is_an_error() {
        let mut c = conn(b"a\r\nb\r\n").await;
        assert!(c.read_block(1000).await.is_err());
    }

    /// A block as RFC 3977 §3.1.1 reads it, from input holding all of it:
    /// each line's CRLF (or bare LF) made CRLF, a leading dot removed, up
    /// to the line of a single dot; octets past `limit` counted, not kept.
    fn block_of(input: &[u8], limit: usize) -> (Vec<u8>, usize, bool) {
        let (mut data, mut size, mut too_big) = (Vec::new(), 0, false);
        for raw in input.split_inclusive(|&c| c == b'\n') {
            let line = raw.strip_suffix(b"\n").unwrap_or(raw);
            let mut line = line.strip_suffix(b"\r").unwrap_or(line);
            if line == b"." {
                break;
            }
            if line.first() == Some(&b'.') {
                line = &line[1..];
            }
            size += line.len() + 2;
            if !too_big && size <= limit {
                data.extend_from_slice(line);
                data.extend_from_slice(b"\r\n");
            } else {
                too_big = true;
            }
        }
        (data, size, too_big)
    }

    proptest::proptest! {
        /// However the input is cut into reads, the block taken is the
        /// block of the whole input, and the next command follows it.
        #[test]
        fn a_block_taken_in_any_pieces_is_the_block(
            lines in proptest::collection::vec(
                ("[.]{0,2}[a-c.\r ]{0,40}", proptest::bool::ANY), 0..40),
            cuts in proptest::collection::vec(1usize..200, 1..20),
            limit in 0usize..2000,
        ) {
            let mut input = Vec::new();
            for (text, crlf) in &lines {
                // A line of a single dot would end the block early.
                let ends = if *crlf { text.as_str() } else { text.trim_end_matches('\r') };
                let text = if ends == "." { ".." } else { text.as_str() };
                input.extend_from_slice(text.as_bytes());
                input.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
            input.extend_from_slice(b".\r\nNEXT\r\n");
            let mut c = Connection {
                stream: (),
                unacked: false,
                buf: Vec::new(),
                pos: 0,
                out: Vec::new(),
                max_line: 512,
                deflate: None,
            };
            let mut reader = BlockReader::new(limit);
            let mut rest = &input[..];
            let mut taken = None;
            for cut in cuts.iter().cycle() {
                let (piece, after) = rest.split_at((*cut).min(rest.len()));
                c.buf.extend_from_slice(piece);
                rest = after;
                taken = reader.take_buffered(&mut c);
                if taken.is_some() || rest.is_empty() {
                    break;
                }
                // As `fill` does before a read.
                if c.pos > c.buf.len() / 2 {
                    c.buf.drain(..c.pos);
                    c.pos = 0;
                }
            }
            let block = taken.expect("the whole block");
            let (data, size, too_big) = block_of(&input, limit);
            proptest::prop_assert_eq!(block.size, size);
            proptest::prop_assert_eq!(block.too_big, too_big);
            if !too_big {
                proptest::prop_assert_eq!(block.data, data);
            } else {
                proptest::prop_assert!(block.data.len() <= limit);
            }
            let mut unread = c.buf[c.pos..].to_vec();
            unread.extend_from_slice(rest);
            proptest::prop_assert_eq!(unread, b"NEXT\r\n".to_vec());
        }
    }

    #[tokio::test]
    async fn a_very_long_block_line_is_kept_whole() {
        let mut input = vec![b'y'; 200_000];
        input.extend_from_slice(b"\r\n.\r\n");
        let mut c = conn(&input).await;
        let b = c.read_block(1 << 20).await.unwrap();
        assert_eq!(b.data.len(), 200_002);
        assert!(b.data.ends_with(b"y\r\n"));
    }
}

#[cfg(test)]
mod slow_tests {
    use super::*;

    #[tokio::test]
    async fn a_line_sent_a_byte_at_a_time_times_out() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut c = Connection::new(server, 512);
        let writer = tokio::spawn(async move {
            for b in b"GROUP local.test\r\n" {
                if client.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let r = c.read_line(Duration::from_millis(200)).await;
        assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));
        writer.abort();
    }
}

/// The COMPRESS layer under the framing (RFC 8054).
#[cfg(test)]
mod deflate_tests {
    use super::*;

    /// Deflates `plain` as our clients do (`ClientLayer`), with a sync
    /// flush after each piece that `cuts` marks.
    fn client_deflate(plain: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut client = ClientLayer::new(Vec::new());
        let mut out = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&plain.len())) {
            out.extend_from_slice(client.compress(&plain[from..to.max(from)]).unwrap());
            from = to.max(from);
        }
        out
    }

    #[tokio::test]
    async fn a_compressed_stream_frames_like_a_plain_one() {
        // The same commands and block, in plain and through DEFLATE with
        // flushes at odd places and the octets arriving a few at a time:
        // the framing sees the same lines.
        let mut plain = Vec::new();
        for i in 0..200 {
            plain.extend_from_slice(format!("STAT {i}\r\n").as_bytes());
        }
        plain.extend_from_slice(b"TAKETHIS <a@b>\r\nPath: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n");
        for (cuts, chunk) in [(vec![], 1usize), (vec![3, 700, 701], 7), (vec![1500], 4096)] {
            // The COMPRESS line and the start of the compressed stream
            // may arrive together: what was read past the line is
            // compressed input.
            let mut raw = b"COMPRESS DEFLATE\r\n".to_vec();
            raw.extend(client_deflate(&plain, &cuts));
            let (mut client, server) = tokio::io::duplex(1 << 20);
            let mut c = Connection::new(server, 512);
            let writer = tokio::spawn(async move {
                for piece in raw.chunks(chunk) {
                    client.write_all(piece).await.unwrap();
                }
                client
            });
            assert_eq!(
                c.read_line(Duration::from_secs(5)).await.unwrap(),
                Some(Line::Line(b"COMPRESS DEFLATE".to_vec()))
            );
            c.start_deflate();
            for i in 0..200 {
                let line = c.read_line(Duration::from_secs(5)).await.unwrap();
                assert_eq!(line, Some(Line::Line(format!("STAT {i}").into_bytes())));
            }
            assert_eq!(
                c.read_line(Duration::from_secs(5)).await.unwrap(),
                Some(Line::Line(b"TAKETHIS <a@b>".to_vec()))
            );
            let block = c.read_block(1000).await.unwrap();
            assert_eq!(block.data, b"Path: x\r\n\r\n.dot\r\n");
            assert_eq!(
                c.read_line(Duration::from_secs(5)).await.unwrap(),
                Some(Line::Line(b"QUIT".to_vec()))
            );
            drop(writer.await.unwrap());
            assert_eq!(c.read_line(Duration::from_secs(5)).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn a_large_article_that_compresses_well_is_read_whole() {
        // 300 KiB that deflate to a few hundred octets: the decompressor
        // holds far more than one read's room after taking all the input,
        // and the rest must come out without waiting for more octets.
        let body = "A line said again and again.\r\n".repeat(10_000);
        let mut plain = b"TAKETHIS <big@test>\r\n".to_vec();
        plain.extend_from_slice(body.as_bytes());
        plain.extend_from_slice(b".\r\nQUIT\r\n");
        let raw = client_deflate(&plain, &[]);
        assert!(raw.len() < 4096, "{} octets", raw.len());
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(&raw).await.unwrap();
        let mut c = Connection::new(server, 512);
        c.start_deflate();
        let read = async {
            let line = c.read_line(Duration::from_secs(5)).await.unwrap();
            assert_eq!(line, Some(Line::Line(b"TAKETHIS <big@test>".to_vec())));
            let block = c.read_block(1 << 20).await.unwrap();
            assert!(block.data == body.as_bytes());
            c.read_line(Duration::from_secs(5)).await.unwrap()
        };
        // The client keeps the connection open: a reader that waits for
        // input it already has would wait for ever.
        let last = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("read without more input");
        assert_eq!(last, Some(Line::Line(b"QUIT".to_vec())));
        drop(client);
    }

    #[tokio::test]
    async fn compressed_output_inflates_to_what_was_sent() {
        use flate2::{Decompress, FlushDecompress};
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut c = Connection::new(server, 512);
        c.send_raw(b"206 Compression active\r\n");
        c.flush().await.unwrap();
        c.start_deflate();
        let mut expected = Vec::new();
        for i in 0..50 {
            let line = format!("223 {i} <{i}@example> article exists\r\n");
            c.send_raw(line.as_bytes());
            expected.extend_from_slice(line.as_bytes());
            if i % 7 == 0 {
                c.flush().await.unwrap();
            }
        }
        c.flush().await.unwrap();
        drop(c);
        let mut raw = Vec::new();
        client.read_to_end(&mut raw).await.unwrap();
        let head = b"206 Compression active\r\n";
        assert_eq!(&raw[..head.len()], head);
        let mut d = Decompress::new(false);
        let mut out = Vec::with_capacity(64 * 1024);
        d.decompress_vec(&raw[head.len()..], &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, expected);
        assert!(raw.len() - head.len() < expected.len() / 2);
    }
}
