//! `tidings bench stream --ceiling`: a transit server that stores nothing,
//! to measure what the wire, the benchmark's client and the disk allow on
//! this machine, so that a rate of tidings can be read against it.
//!
//! It answers MODE STREAM, CHECK, TAKETHIS and IHAVE at once, on a plain
//! thread per connection (no runtime, no hand-off between threads). With a
//! scratch file it first writes each article there and `fdatasync`s once
//! before the answers of each burst are sent: for lock-step IHAVE that is
//! one durable write per acknowledgement, the least any server that
//! acknowledges only what is on disk must do. The file is allocated in
//! advance and written round, so a sync never waits on file-size metadata.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::thread;

/// Bytes of the scratch file the articles are written round.
const SCRATCH_BYTES: u64 = 64 << 20;

/// Starts the server on a free loopback port; it runs until the process
/// ends. `scratch`: the file to write and sync articles to, if any.
pub fn start(scratch: Option<&Path>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let file = match scratch {
        Some(path) => {
            let f = File::options()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(path)?;
            // Real blocks, not a hole: later writes overwrite in place.
            let zeros = vec![0u8; 1 << 20];
            for i in 0..SCRATCH_BYTES / zeros.len() as u64 {
                f.write_all_at(&zeros, i * zeros.len() as u64)?;
            }
            f.sync_all()?;
            Some(f)
        }
        None => None,
    };
    thread::Builder::new()
        .name("ceiling-accept".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let file = match &file {
                    Some(f) => match f.try_clone() {
                        Ok(f) => Some(f),
                        Err(_) => continue,
                    },
                    None => None,
                };
                let _ = thread::Builder::new()
                    .name("ceiling-conn".into())
                    .spawn(move || {
                        let _ = serve(stream, file);
                    });
            }
        })?;
    Ok(addr)
}

/// One connection: answers in order, flushing (after the sync, if any)
/// only when no further command is already buffered.
fn serve(stream: TcpStream, file: Option<File>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = BufWriter::new(stream.try_clone()?);
    let mut input = BufReader::with_capacity(64 << 10, stream);
    let mut line = Vec::new();
    let mut offset = 0u64;
    let mut unsynced = false;
    out.write_all(b"200 ceiling: stores nothing\r\n")?;
    out.flush()?;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let mut words = text.split_whitespace();
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        let id = words.next().unwrap_or("");
        match verb.as_str() {
            "MODE" => out.write_all(b"203 Streaming permitted\r\n")?,
            "CHECK" => write!(out, "238 {id}\r\n")?,
            "TAKETHIS" => {
                let id = id.to_owned();
                let article = read_block(&mut input)?;
                unsynced |= store(file.as_ref(), &article, &mut offset)?;
                write!(out, "239 {id}\r\n")?;
            }
            "IHAVE" => {
                out.write_all(b"335 Send it\r\n")?;
                out.flush()?;
                let article = read_block(&mut input)?;
                unsynced |= store(file.as_ref(), &article, &mut offset)?;
                out.write_all(b"235 Article transferred OK\r\n")?;
            }
            "QUIT" => {
                out.write_all(b"205 Bye\r\n")?;
                return out.flush();
            }
            _ => out.write_all(b"500 Unknown command\r\n")?,
        }
        if input.buffer().is_empty() {
            if unsynced {
                if let Some(f) = &file {
                    f.sync_data()?;
                }
                unsynced = false;
            }
            out.flush()?;
        }
    }
}

/// Reads a dot-terminated block, as sent (dot-stuffing is irrelevant here).
fn read_block(input: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut block = Vec::with_capacity(4096);
    loop {
        let start = block.len();
        if input.read_until(b'\n', &mut block)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if &block[start..] == b".\r\n" {
            return Ok(block);
        }
    }
}

/// Writes `article` at `offset` in the scratch file, if there is one, and
/// moves the offset on to the next 4 KiB boundary. `true` when written.
fn store(file: Option<&File>, article: &[u8], offset: &mut u64) -> io::Result<bool> {
    let Some(f) = file else {
        return Ok(false);
    };
    let len = (article.len() as u64).min(SCRATCH_BYTES);
    if *offset + len > SCRATCH_BYTES {
        *offset = 0;
    }
    f.write_all_at(&article[..len as usize], *offset)?;
    *offset = (*offset + len).next_multiple_of(4096) % SCRATCH_BYTES;
    Ok(true)
}
