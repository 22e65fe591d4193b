//! The body store: the bodies of large articles, written once into segment
//! files beside the database (migrations/0010_bodies.sql).
//!
//! SQLite in WAL mode writes every byte of a row twice: into the WAL, and
//! into the database when a checkpoint copies it there. For a 20 KiB
//! article that second write is most of what the disk does. A body of at
//! least `storage.body_min_bytes` goes instead to the end of the segment
//! the writer fills, `<database>.bodies/NNNNNNNN`, and its row keeps the
//! head and the body's place: segment, offset, length and CRC-32.
//!
//! Durability: the writer writes a batch's bodies before it commits the
//! batch, and the sync that acknowledges the batch syncs the segment files
//! it wrote before the WAL (`ingest`). A crash can still leave a committed
//! row whose body is not on disk, for an article never acknowledged:
//! `verify`, at start, checks every body after `bodies_verified` and removes
//! the articles whose body is wrong, so a peer offers them again.
//!
//! Space: a trigger counts a segment's live bodies down as their rows are
//! deleted (expiry, cancels, removals); a segment with none left is filled
//! again from its start.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use super::raw::{Db, RawError, Step, Stmt};
use super::{keep_log_head_sql, withdraw};

/// Where a body is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPlace {
    pub seg: i64,
    pub off: u64,
    pub len: usize,
    pub crc: u32,
}

impl BodyPlace {
    /// From a row's `body_seg`, `body_off`, `body_len` and `body_crc`:
    /// `None` when the body is in the row.
    pub fn from_columns(
        seg: Option<i64>,
        off: Option<i64>,
        len: Option<i64>,
        crc: Option<i64>,
    ) -> Option<BodyPlace> {
        Some(BodyPlace {
            seg: seg?,
            off: u64::try_from(off?).ok()?,
            len: usize::try_from(len?).ok()?,
            crc: u32::try_from(crc?).ok()?,
        })
    }
}

/// How a column of the table called `alias` is named in SQL (no alias:
/// bare).
fn qualified(alias: &str) -> String {
    if alias.is_empty() {
        String::new()
    } else {
        format!("{alias}.")
    }
}

/// The columns `BodyPlace::from_columns` reads, after those named before
/// them, for a table called `alias` (empty: none).
pub fn columns(alias: &str) -> String {
    let a = qualified(alias);
    format!("{a}body_seg, {a}body_off, {a}body_len, {a}body_crc")
}

/// An article's stored size in SQL: the row's bytes and its body's.
pub fn size_sql(alias: &str) -> String {
    let a = qualified(alias);
    format!("(length({a}bytes) + coalesce({a}body_len, 0))")
}

/// The directory of the segments of the database at `database`.
pub fn directory(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".bodies");
    PathBuf::from(name)
}

/// The octets the segment files in `dir` take (0 when there is none).
pub fn bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The file of segment `seg` in the segment directory `dir`.
pub(crate) fn segment_path(dir: &Path, seg: i64) -> PathBuf {
    dir.join(format!("{seg:08}"))
}

#[derive(Debug, Error)]
pub enum BodyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the body at offset {offset} of {path} does not match its CRC")]
    Corrupt { path: String, offset: u64 },
}

/// Segments opened for reading are kept open, up to this many.
const OPEN_FOR_READING: usize = 256;

/// Reads bodies back for the store's readers.
pub struct Bodies {
    dir: PathBuf,
    files: Mutex<HashMap<i64, Arc<File>>>,
}

impl Bodies {
    pub fn new(dir: PathBuf) -> Bodies {
        Bodies {
            dir,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// Where the segments are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends the body at `place` to `out`, checked against its CRC.
    pub fn read_into(&self, place: &BodyPlace, out: &mut Vec<u8>) -> Result<(), BodyError> {
        let file = self.file(place.seg)?;
        // A place past the file's end (a damaged row) is refused before
        // any memory is taken for it.
        let path = || segment_path(&self.dir, place.seg).display().to_string();
        let size = (file.metadata()).map_err(|source| BodyError::Io {
            path: path(),
            source,
        })?;
        if place.off.saturating_add(place.len as u64) > size.len() {
            return Err(BodyError::Io {
                path: path(),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        let start = out.len();
        out.resize(start + place.len, 0);
        let read = file.read_exact_at(&mut out[start..], place.off);
        let wrong = match read {
            Err(source) => Some(BodyError::Io {
                path: path(),
                source,
            }),
            Ok(()) if crc32fast::hash(&out[start..]) != place.crc => Some(BodyError::Corrupt {
                path: path(),
                offset: place.off,
            }),
            Ok(()) => None,
        };
        match wrong {
            Some(e) => {
                out.truncate(start);
                Err(e)
            }
            None => Ok(()),
        }
    }

    fn file(&self, seg: i64) -> Result<Arc<File>, BodyError> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(&seg) {
            return Ok(f.clone());
        }
        let path = segment_path(&self.dir, seg);
        let file = File::open(&path).map_err(|source| BodyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if files.len() >= OPEN_FOR_READING {
            files.clear();
        }
        let file = Arc::new(file);
        files.insert(seg, file.clone());
        Ok(file)
    }
}

/// A segment file the writer wrote and a sync must cover.
#[derive(Clone)]
pub struct Written {
    pub seg: i64,
    pub file: Arc<File>,
}

impl Written {
    /// Syncs the file's data; the reason on failure.
    pub fn sync(&self) -> Result<(), String> {
        (self.file.sync_data()).map_err(|e| format!("syncing body segment {}: {e}", self.seg))
    }
}

/// The segment the writer fills.
struct Filling {
    seg: i64,
    file: Arc<File>,
    /// Where the next body goes.
    next: u64,
    /// Bodies appended and not yet written, which begin at `next -
    /// unwritten.len()`: written with one call before the commit (`flush`),
    /// not one per body.
    unwritten: Vec<u8>,
}

impl Filling {
    fn flush(&mut self) -> Result<(), RawError> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let at = self.next - self.unwritten.len() as u64;
        let done = self.file.write_all_at(&self.unwritten, at);
        // The disk starts on the bodies now, while the WAL is written and
        // committed, so the sync before the answers has less left to do
        // (20 KiB streamed, interleaved runs: medians 23.6k -> 24.1k/s at
        // window 64, 10.0k -> 11.1k/s CHECK-first at window 20). Its
        // failures are the sync's to report.
        #[cfg(target_os = "linux")]
        if done.is_ok() {
            use std::os::fd::AsRawFd;
            // SAFETY: the file is open for the call, and sync_file_range
            // only reads its arguments.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    at as i64,
                    self.unwritten.len() as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.unwritten.clear();
        done.map_err(|e| io_error(&format!("writing body segment {}", self.seg), e))
    }
}

/// The writer's side: the segment it fills, what the transaction under way
/// put in each segment, and the files written since the last sync.
pub struct SegmentWriter {
    dir: PathBuf,
    segment_bytes: u64,
    filling: Option<Filling>,
    /// Per segment, in the transaction under way: bodies added, and where
    /// the last ends.
    added: Vec<(i64, i64, u64)>,
    /// Files written since `take_written`.
    written: Vec<Written>,
    /// Where the filling stood when the transaction began (`mark`).
    marked: Option<(i64, Arc<File>, u64)>,
}

/// An I/O error as the writer's transaction reports it: a full disk as
/// SQLite's "full", so the batch is refused as for a full database.
pub fn io_error(what: &str, e: std::io::Error) -> RawError {
    let full = e.raw_os_error() == Some(libc::ENOSPC);
    RawError {
        code: if full {
            libsqlite3_sys::SQLITE_FULL
        } else {
            libsqlite3_sys::SQLITE_IOERR
        },
        message: format!("{what}: {e}"),
    }
}

impl SegmentWriter {
    pub fn new(dir: PathBuf, segment_bytes: u64) -> SegmentWriter {
        SegmentWriter {
            dir,
            segment_bytes: segment_bytes.max(1),
            filling: None,
            added: Vec::new(),
            written: Vec::new(),
            marked: None,
        }
    }

    /// The segment being filled, if any.
    pub fn filling(&self) -> Option<i64> {
        self.filling.as_ref().map(|f| f.seg)
    }

    /// Whether a body of `len` octets fits in a segment at all.
    pub fn takes(&self, len: usize) -> bool {
        (len as u64) <= self.segment_bytes
    }

    /// Whether a body of `len` octets fits in the segment being filled.
    pub fn fits(&self, len: usize) -> bool {
        self.filling
            .as_ref()
            .is_some_and(|f| f.next + len as u64 <= self.segment_bytes)
    }

    /// Writes the bodies appended so far to their file.
    pub fn flush(&mut self) -> Result<(), RawError> {
        match self.filling.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }

    /// Fills segment `seg` from `from` on (its file is made if missing),
    /// once the bodies appended to the one before are written.
    pub fn fill(&mut self, seg: i64, from: u64) -> Result<(), RawError> {
        self.flush()?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| io_error(&format!("creating {}", self.dir.display()), e))?;
        let path = segment_path(&self.dir, seg);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(&format!("opening {}", path.display()), e))?;
        self.filling = Some(Filling {
            seg,
            file: Arc::new(file),
            next: from,
            unwritten: Vec::new(),
        });
        Ok(())
    }

    /// Appends `body` to the segment being filled (the caller saw that it
    /// `fits`) and returns its place. It is written by `flush`.
    pub fn append(&mut self, body: &[u8]) -> Result<BodyPlace, RawError> {
        let Some(f) = self.filling.as_mut() else {
            return Err(io_error(
                "writing a body",
                std::io::Error::other("no segment is being filled"),
            ));
        };
        f.unwritten.extend_from_slice(body);
        let place = BodyPlace {
            seg: f.seg,
            off: f.next,
            len: body.len(),
            crc: crc32fast::hash(body),
        };
        f.next += body.len() as u64;
        let end = f.next;
        match self.added.iter_mut().find(|(s, _, _)| *s == f.seg) {
            Some(a) => {
                a.1 += 1;
                a.2 = end;
            }
            None => self.added.push((f.seg, 1, end)),
        }
        if !self.written.iter().any(|w| w.seg == f.seg) {
            self.written.push(Written {
                seg: f.seg,
                file: f.file.clone(),
            });
        }
        Ok(place)
    }

    /// Notes where the filling stands, as a transaction begins.
    pub fn mark(&mut self) {
        self.added.clear();
        self.marked = self
            .filling
            .as_ref()
            .map(|f| (f.seg, f.file.clone(), f.next));
    }

    /// What the transaction under way added since the last call: per
    /// segment, bodies and the end of the last. Cleared by `mark` too.
    pub fn take_added(&mut self) -> Vec<(i64, i64, u64)> {
        std::mem::take(&mut self.added)
    }

    /// The transaction was rolled back: the filling goes back to where it
    /// stood (`mark`), as the segment it moved to may not be recorded.
    pub fn rolled_back(&mut self) {
        self.added.clear();
        self.filling = self.marked.take().map(|(seg, file, next)| Filling {
            seg,
            file,
            next,
            unwritten: Vec::new(),
        });
    }

    /// The files written since the last call, for a sync to cover.
    pub fn take_written(&mut self) -> Vec<Written> {
        std::mem::take(&mut self.written)
    }
}

/// How the writer keeps bodies (`storage.body_min_bytes` and
/// `storage.body_segment_mib`, with `synchronous = full`).
pub struct BodyConfig {
    pub dir: PathBuf,
    pub min_bytes: usize,
    pub segment_bytes: u64,
    /// The WAL: synced before a segment freed by deletes is filled again,
    /// so that the deletes are on disk before the bodies they freed are
    /// overwritten.
    pub wal: PathBuf,
    /// The newest article whose batch's sync ended well: every body up to
    /// it is on disk (`i64::MIN` once a sync failed: none is known to be).
    pub synced_through: Arc<AtomicI64>,
}

/// The writer's side of the body store, on the writer's connection: the
/// segment it fills, and the rows that account for the segments.
pub struct BodyWriter<'db> {
    segments: SegmentWriter,
    min_bytes: usize,
    wal: PathBuf,
    synced_through: Arc<AtomicI64>,
    /// The database has a size limit (`storage.max_size_mib`): bodies stay
    /// in it, where the limit counts them.
    limited: bool,
    /// The transaction under way wrote a body.
    wrote: bool,
    /// A segment no stored article has a body in, but the one filled (?1).
    free: Stmt<'db>,
    /// The number of a new segment.
    next_new: Stmt<'db>,
    /// Makes segment ?1 empty and recorded as the one filled.
    claim: [Stmt<'db>; 2],
    /// Adds ?2 bodies to segment ?1, filled up to ?3.
    add_live: Stmt<'db>,
    /// Moves `bodies_verified` up to ?1.
    set_verified: Stmt<'db>,
}

impl<'db> BodyWriter<'db> {
    /// Prepares the statements, and goes on filling the segment the last
    /// writer filled from where its last committed body ends.
    pub fn new(db: &'db Db, config: BodyConfig) -> Result<BodyWriter<'db>, RawError> {
        let mut segments = SegmentWriter::new(config.dir, config.segment_bytes);
        let mut filled = db.prepare(
            "SELECT m.value, s.used FROM meta m JOIN body_segments s ON s.seg = m.value \
             WHERE m.key = 'body_segment'",
        )?;
        if let Some((seg, used)) = filled.first_row(|r| (r.column_i64(0), r.column_i64(1)))? {
            segments.fill(seg, u64::try_from(used).unwrap_or(0))?;
        }
        Ok(BodyWriter {
            segments,
            min_bytes: config.min_bytes.max(1),
            wal: config.wal,
            synced_through: config.synced_through,
            limited: false,
            wrote: false,
            free: db.prepare(
                "SELECT seg FROM body_segments WHERE live <= 0 AND seg <> ?1 ORDER BY seg LIMIT 1",
            )?,
            next_new: db.prepare("SELECT coalesce(max(seg), 0) + 1 FROM body_segments")?,
            claim: [
                db.prepare(
                    "INSERT INTO body_segments (seg, live, used) VALUES (?1, 0, 0) \
                     ON CONFLICT (seg) DO UPDATE SET live = 0, used = 0",
                )?,
                db.prepare("UPDATE meta SET value = ?1 WHERE key = 'body_segment'")?,
            ],
            add_live: db.prepare(
                "UPDATE body_segments SET live = live + ?2, used = max(used, ?3) WHERE seg = ?1",
            )?,
            set_verified: db.prepare(
                "UPDATE meta SET value = ?1 WHERE key = 'bodies_verified' AND value < ?1",
            )?,
        })
    }

    /// Whether a body of `len` octets goes to a segment.
    pub fn keeps(&self, len: usize) -> bool {
        !self.limited && len >= self.min_bytes && self.segments.takes(len)
    }

    /// Whether the database has a size limit (bodies then stay in it).
    pub fn set_limited(&mut self, limited: bool) {
        self.limited = limited;
    }

    /// Writes `body` into the segment being filled, or the next one, in
    /// the transaction under way.
    pub fn put(&mut self, body: &[u8]) -> Result<BodyPlace, RawError> {
        if !self.segments.fits(body.len()) {
            self.next_segment()?;
        }
        self.wrote = true;
        self.segments.append(body)
    }

    /// Moves on to a free segment, or a new one.
    fn next_segment(&mut self) -> Result<(), RawError> {
        // The bodies the transaction put in segments so far count first:
        // a segment it filled from empty must not look free.
        self.record_added()?;
        self.free
            .bind_i64(1, self.segments.filling().unwrap_or(0))?;
        let seg = match self.free.first_i64()? {
            Some(seg) => {
                File::open(&self.wal)
                    .and_then(|wal| wal.sync_data())
                    .map_err(|e| io_error(&format!("syncing {}", self.wal.display()), e))?;
                seg
            }
            None => self.next_new.first_i64()?.unwrap_or(1),
        };
        for s in &mut self.claim {
            s.bind_i64(1, seg)?;
            s.execute()?;
        }
        self.segments.fill(seg, 0)
    }

    /// A transaction begins.
    pub fn begin(&mut self) {
        self.wrote = false;
        self.segments.mark();
    }

    /// Records, in the transaction about to commit, what it added to each
    /// segment, and how far bodies are known to be on disk.
    pub fn before_commit(&mut self) -> Result<(), RawError> {
        if !self.wrote {
            return Ok(());
        }
        self.wrote = false;
        self.segments.flush()?;
        self.record_added()?;
        let synced = self.synced_through.load(Ordering::Acquire);
        if synced > 0 {
            self.set_verified.bind_i64(1, synced)?;
            self.set_verified.execute()?;
        }
        Ok(())
    }

    /// Counts the bodies added since the last call into their segments'
    /// rows, in the transaction under way.
    fn record_added(&mut self) -> Result<(), RawError> {
        for (seg, bodies, end) in self.segments.take_added() {
            self.add_live.bind_i64(1, seg)?;
            self.add_live.bind_i64(2, bodies)?;
            self.add_live
                .bind_i64(3, i64::try_from(end).unwrap_or(i64::MAX))?;
            self.add_live.execute()?;
        }
        Ok(())
    }

    /// The transaction was rolled back.
    pub fn rolled_back(&mut self) {
        self.wrote = false;
        self.segments.rolled_back();
    }

    /// The segment files written since the last call, for the sync of the
    /// transaction just committed.
    pub fn take_written(&mut self) -> Vec<Written> {
        self.segments.take_written()
    }
}

/// Copies the first `end` octets of each segment of `segments` (segment,
/// end) from directory `from` into a new directory `into`, each file and
/// the directory synced.
pub fn copy_segments(from: &Path, into: &Path, segments: &[(i64, i64)]) -> Result<(), BodyError> {
    use std::io::{Read, Write};
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| BodyError::Io { path, source }
    };
    std::fs::create_dir(into).map_err(failed(into))?;
    for &(seg, end) in segments {
        let (src, dst) = (segment_path(from, seg), segment_path(into, seg));
        let source = File::open(&src).map_err(failed(&src))?;
        let mut target = File::create_new(&dst).map_err(failed(&dst))?;
        let mut limited = source.take(u64::try_from(end).unwrap_or(0));
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = limited.read(&mut buf).map_err(failed(&src))?;
            if n == 0 {
                break;
            }
            target.write_all(&buf[..n]).map_err(failed(&dst))?;
        }
        target.sync_all().map_err(failed(&dst))?;
    }
    File::open(into)
        .and_then(|d| d.sync_all())
        .map_err(failed(into))
}

/// What `verify` found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Bodies checked.
    pub checked: usize,
    /// Articles removed, their body being wrong or missing.
    pub removed: usize,
}

/// Checks the bodies of the articles after `bodies_verified` against their
/// CRC, and removes every article whose body is wrong or missing: its
/// numbers leave its groups and its message-id leaves history, so that a
/// peer offers it again. Such an article was committed by a writer that
/// stopped (a crash) before its body was on disk, so it was never
/// acknowledged. Then `bodies_verified` moves to the head of the log. Runs
/// on the writer's connection before the writer starts.
pub fn verify(db: &Db, bodies: &Bodies) -> Result<Verified, RawError> {
    let mut rows = db.prepare(&format!(
        "SELECT id, msgid, bytes, {} FROM articles \
         WHERE id > (SELECT value FROM meta WHERE key = 'bodies_verified') \
         AND body_seg IS NOT NULL ORDER BY id",
        columns("")
    ))?;
    let mut checked = 0;
    let mut bad = Vec::new();
    let mut body = Vec::new();
    while rows.step()? == Step::Row {
        let place = BodyPlace::from_columns(
            Some(rows.column_i64(3)),
            Some(rows.column_i64(4)),
            Some(rows.column_i64(5)),
            Some(rows.column_i64(6)),
        );
        checked += 1;
        body.clear();
        let good = place.is_some_and(|p| bodies.read_into(&p, &mut body).is_ok());
        if !good {
            bad.push((rows.column_i64(0), rows.column_text(1), rows.column_blob(2)));
        }
    }
    drop(rows);
    db.exec("BEGIN IMMEDIATE")?;
    let done = remove_unwritten(db, &bad).and_then(|()| db.exec("COMMIT"));
    if done.is_err() {
        let _ = db.exec("ROLLBACK");
    }
    done?;
    for (id, msgid, _) in &bad {
        tracing::warn!(
            article = id,
            msgid = msgid.as_str(),
            "removed an article whose body did not reach the disk before the server stopped \
             (never acknowledged: its peer offers it again)"
        );
    }
    Ok(Verified {
        checked,
        removed: bad.len(),
    })
}

/// Removes articles `bad` (id, message-id, head) as if never stored, and
/// moves `bodies_verified` to the head of the log: in the transaction
/// under way.
fn remove_unwritten(db: &Db, bad: &[(i64, String, Vec<u8>)]) -> Result<(), RawError> {
    if !bad.is_empty() {
        db.exec(&keep_log_head_sql())?;
        let mut unnumbering = withdraw::Unnumbering::prepare(db)?;
        let mut forget = [
            db.prepare("DELETE FROM history WHERE msgid = ?1 AND article_id = ?2")?,
            db.prepare("DELETE FROM history_recent WHERE msgid = ?1 AND article_id = ?2")?,
        ];
        let mut delete = db.prepare(withdraw::DELETE_ARTICLE)?;
        for (id, msgid, head) in bad {
            unnumbering.run(*id, head)?;
            for s in &mut forget {
                s.bind_text(1, msgid)?;
                s.bind_i64(2, *id)?;
                s.execute()?;
            }
            delete.bind_i64(1, *id)?;
            delete.execute()?;
        }
    }
    db.exec(&format!(
        "UPDATE meta SET value = {} WHERE key = 'bodies_verified'",
        super::LAST_ARTICLE_ID
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &Path, bytes: u64) -> SegmentWriter {
        let mut w = SegmentWriter::new(dir.to_owned(), bytes);
        w.fill(1, 0).expect("fill");
        w
    }

    #[test]
    fn a_body_reads_back_as_written_and_checked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("db.bodies");
        let mut w = writer(&dir, 1 << 20);
        w.mark();
        let a = w.append(b"first body\r\n").expect("append");
        let b = w.append(b"second, longer body\r\n").expect("append");
        assert_eq!((a.seg, a.off, a.len), (1, 0, 12));
        assert_eq!((b.seg, b.off), (1, 12));
        assert_eq!(w.take_added(), [(1, 2, 33)]);
        w.flush().expect("flush");
        let bodies = Bodies::new(dir.clone());
        let mut out = b"head\r\n\r\n".to_vec();
        bodies.read_into(&b, &mut out).expect("read");
        assert_eq!(out, b"head\r\n\r\nsecond, longer body\r\n");
        // A body changed on disk is refused, and nothing is appended.
        std::fs::write(segment_path(&dir, 1), b"first bodY\r\n").expect("write");
        let mut out = Vec::new();
        let e = bodies.read_into(&a, &mut out).expect_err("corrupt");
        assert!(matches!(e, BodyError::Corrupt { offset: 0, .. }), "{e}");
        assert!(out.is_empty());
        // Past the end of the file: an I/O error.
        let e = bodies.read_into(&b, &mut out).expect_err("short");
        assert!(matches!(e, BodyError::Io { .. }), "{e}");
        // So is a length no file could hold, before memory is taken for it.
        let huge = BodyPlace {
            len: usize::MAX / 2,
            ..a
        };
        let e = bodies.read_into(&huge, &mut out).expect_err("huge");
        assert!(matches!(e, BodyError::Io { .. }), "{e}");
        assert!(out.is_empty());
    }

    #[test]
    fn a_full_segment_takes_no_more_and_a_rollback_goes_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("db.bodies");
        let mut w = writer(&dir, 20);
        assert!(w.fits(20) && !w.fits(21) && w.takes(20) && !w.takes(21));
        w.mark();
        w.append(&[b'x'; 15]).expect("append");
        assert!(w.fits(5) && !w.fits(6));
        w.fill(2, 0).expect("fill");
        w.append(b"abc").expect("append");
        assert_eq!(w.take_added(), [(1, 1, 15), (2, 1, 3)]);
        w.append(b"d").expect("append");
        let written: Vec<i64> = w.take_written().iter().map(|x| x.seg).collect();
        assert_eq!(written, [1, 2]);
        w.rolled_back();
        assert_eq!(w.filling(), Some(1));
        assert!(w.fits(20), "back at the start of segment 1");
        assert!(w.take_added().is_empty());
    }
}
