//! A VFS over SQLite's own ("unix") that writes a transaction's WAL frames
//! with one system call instead of two per frame.
//!
//! SQLite writes each WAL frame as two `pwrite`s: its 24-octet header, then
//! the page. On the 2-core test VM a frame cost ~4.4 µs that way, and ~1.0
//! µs gathered with the rest of its commit into writes of up to 124 KiB
//! (copy included): the kernel's cost is per call, and the header and page
//! of a frame share a page of the page cache. The ingest writer commits ~0.4 frames per streamed 2
//! KiB article, and its WAL writes were a fifth of its time.
//!
//! Only the WAL file of a connection opened on this VFS is changed; every
//! other file (the database, the shared memory) is SQLite's own file object,
//! opened by the unix VFS in the memory SQLite gave for ours.
//!
//! What the WAL file does:
//! - A frame's header (a 24-octet write) is held; when its page follows at
//!   the next offset, both are added to a buffer of frames in file order.
//! - The buffer is written when the commit frame's page comes (its header
//!   holds the database size; zero in every other frame), so the commit's
//!   write error, if any, is the commit's: SQLite rolls back and publishes
//!   nothing. It is also written when it reaches `FLUSH_BYTES`.
//! - Any other call on the file first writes what is held and buffered, in
//!   order: a read (the writer reading back a page it spilled), a sync, the
//!   size, a truncate, a lock, a file control, the close. So is any write
//!   that does not continue the buffer (the WAL header at a restart, a page
//!   rewritten in place).
//! - A header written right after a read of the same frame is SQLite
//!   rewriting the checksums of a transaction that rewrote frames it had
//!   spilled (`walRewriteChecksums`): no page follows it, so it is written
//!   at once.
//!
//! Why no frame is ever visible before it is in the file: other connections
//! (readers, the checkpoint thread) find frames through the WAL index's
//! header, which SQLite updates only after the commit frame is written, and
//! that write ends with the buffer written. Frames spilled in the middle of
//! a transaction are seen only by their own connection, which reads them
//! through this file. The behaviour rests on the order in which SQLite
//! writes the WAL (wal.c, `walFrames`): `libsqlite3-sys` is pinned in
//! Cargo.toml, and the tests below check each path on a real file.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;

use libsqlite3_sys as ffi;

/// The VFS's name, for a connection's `vfs` option.
pub const NAME: &str = "tidings-wal";
const NAME_C: &CStr = c"tidings-wal";

/// Buffered frames are written once they are this long: a commit of large
/// articles holds no more memory than this.
const FLUSH_BYTES: usize = 1 << 20;

/// Octets of a WAL frame's header.
const FRAME_HEADER: usize = 24;

/// The most one write of the unix VFS takes: it writes the length masked
/// to 17 bits (`seekAndWriteFd`), so a longer one would be cut short.
/// Whole 4 KiB pages of the page cache, under that.
const WRITE_CALL_BYTES: usize = 0x1ffff & !0xfff;

/// Registers the VFS with SQLite, once per process; later calls return the
/// first call's result. An error leaves connections on SQLite's own VFS.
/// It initialises SQLite: call it after `raw::quiet_memory_statistics`.
pub fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED.get_or_init(register_once).clone()
}

fn register_once() -> Result<(), String> {
    // SAFETY: sqlite3_vfs_find with a null name returns the default VFS (or
    // null), initialising the library first; it is thread-safe.
    let unix = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
    let Some(unix) = NonNull::new(unix) else {
        return Err("SQLite has no default VFS".into());
    };
    // SAFETY: a registered VFS lives as long as the process, and SQLite
    // never changes one after registration.
    let base = unsafe { unix.as_ref() };
    let Some(inner_size) = usize::try_from(base.szOsFile).ok() else {
        return Err("SQLite's VFS has a negative file size".into());
    };
    let vfs = ffi::sqlite3_vfs {
        // Version 2 ends with xCurrentTimeInt64: the system-call hooks of
        // version 3 are for SQLite's own tests.
        iVersion: base.iVersion.min(2),
        szOsFile: c_int::try_from(WalFile::INNER_OFFSET + inner_size)
            .map_err(|_| "SQLite's file object is too large".to_owned())?,
        mxPathname: base.mxPathname,
        pNext: ptr::null_mut(),
        zName: NAME_C.as_ptr(),
        // The VFS that opens the files.
        pAppData: unix.as_ptr().cast(),
        xOpen: Some(open),
        // The unix VFS's other methods ignore the VFS they are called
        // through (they take it as `NotUsed`, or read only `mxPathname`,
        // which is the same here).
        xDelete: base.xDelete,
        xAccess: base.xAccess,
        xFullPathname: base.xFullPathname,
        xDlOpen: base.xDlOpen,
        xDlError: base.xDlError,
        xDlSym: base.xDlSym,
        xDlClose: base.xDlClose,
        xRandomness: base.xRandomness,
        xSleep: base.xSleep,
        xCurrentTime: base.xCurrentTime,
        xGetLastError: base.xGetLastError,
        xCurrentTimeInt64: base.xCurrentTimeInt64,
        xSetSystemCall: None,
        xGetSystemCall: None,
        xNextSystemCall: None,
    };
    let vfs = Box::leak(Box::new(vfs));
    // SAFETY: the VFS is leaked, so it outlives every connection; its name
    // is a static string; registering is thread-safe.
    let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 0) };
    if rc != ffi::SQLITE_OK {
        return Err(format!("registering the VFS failed: SQLite error {rc}"));
    }
    Ok(())
}

/// A WAL file's object: SQLite's view of it (`base`, whose methods are
/// `WAL_METHODS`), then the unix VFS's file object, in the same memory.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// A frame header waiting for its page: offset and octets.
    held: Option<(i64, [u8; FRAME_HEADER])>,
    /// Whole frames not yet written, from offset `start`.
    buf: Vec<u8>,
    start: i64,
    /// The offset of the last read, until the next write or other call.
    last_read: Option<i64>,
    /// Writes made to the file (for the tests).
    writes: u64,
}

impl WalFile {
    /// Where the unix VFS's file object starts (8-octet aligned, as SQLite
    /// allocates file objects).
    const INNER_OFFSET: usize = std::mem::size_of::<WalFile>().next_multiple_of(8);

    /// # Safety
    /// `self.inner` is open.
    unsafe fn methods(&self) -> &ffi::sqlite3_io_methods {
        // SAFETY: an open file's methods are set and static (caller).
        unsafe { &*(*self.inner).pMethods }
    }

    /// Writes `data` at `offset` through the unix VFS, in calls of at most
    /// `WRITE_CALL_BYTES`.
    ///
    /// # Safety
    /// `self.inner` is open.
    unsafe fn write_through(&mut self, data: &[u8], mut offset: i64) -> c_int {
        let Some(write) = (unsafe { self.methods() }).xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        for chunk in data.chunks(WRITE_CALL_BYTES) {
            // SAFETY: the inner file is open; `chunk` is valid for its
            // length, which fits (`WRITE_CALL_BYTES`).
            let rc = unsafe {
                write(
                    self.inner,
                    chunk.as_ptr().cast(),
                    chunk.len() as c_int,
                    offset,
                )
            };
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            self.writes += 1;
            offset += chunk.len() as i64;
        }
        ffi::SQLITE_OK
    }

    /// Writes the buffered frames; they are dropped whatever the outcome
    /// (after a failed write SQLite writes the transaction again, or not).
    ///
    /// # Safety
    /// `self.inner` is open.
    unsafe fn flush_frames(&mut self) -> c_int {
        if self.buf.is_empty() {
            return ffi::SQLITE_OK;
        }
        let buf = std::mem::take(&mut self.buf);
        // SAFETY: as the caller's.
        let rc = unsafe { self.write_through(&buf, self.start) };
        self.buf = buf;
        self.buf.clear();
        rc
    }

    /// Writes everything held and buffered, in file order.
    ///
    /// # Safety
    /// `self.inner` is open.
    unsafe fn flush(&mut self) -> c_int {
        self.last_read = None;
        // SAFETY: as the caller's.
        let rc = unsafe { self.flush_frames() };
        let held = self.held.take();
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        match held {
            // SAFETY: as the caller's.
            Some((offset, header)) => unsafe { self.write_through(&header, offset) },
            None => ffi::SQLITE_OK,
        }
    }

    /// # Safety
    /// `self.inner` is open.
    unsafe fn write(&mut self, data: &[u8], offset: i64) -> c_int {
        let after_read = self.last_read.take();
        if let Some((at, header)) = self.held
            && offset == at + FRAME_HEADER as i64
        {
            // The held header's page: the frame joins the buffer.
            self.held = None;
            if self.buf.is_empty() {
                self.start = at;
            }
            self.buf.extend_from_slice(&header);
            self.buf.extend_from_slice(data);
            let commit = header[4..8] != [0; 4];
            if commit || self.buf.len() >= FLUSH_BYTES {
                // SAFETY: as the caller's.
                return unsafe { self.flush_frames() };
            }
            return ffi::SQLITE_OK;
        }
        if data.len() == FRAME_HEADER && self.held.is_none() && after_read != Some(offset) {
            // A frame's header: held for its page, if the frame continues
            // the buffer.
            let continues = self.buf.is_empty() || self.start + self.buf.len() as i64 == offset;
            if !continues {
                // SAFETY: as the caller's.
                let rc = unsafe { self.flush_frames() };
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
            let mut header = [0; FRAME_HEADER];
            header.copy_from_slice(data);
            self.held = Some((offset, header));
            return ffi::SQLITE_OK;
        }
        // Anything else is written as it comes, after what is pending.
        // SAFETY: as the caller's.
        let rc = unsafe { self.flush() };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        // SAFETY: as the caller's.
        unsafe { self.write_through(data, offset) }
    }
}

/// Opens a file: a WAL file as a `WalFile`, anything else as the unix VFS's
/// own file object.
unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: `vfs` is the VFS registered above, whose pAppData is the unix
    // VFS; `file` is `szOsFile` octets that SQLite allocated (8-aligned),
    // enough for a `WalFile` followed by the unix VFS's object.
    unsafe {
        let unix = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
        let Some(unix_open) = (*unix).xOpen else {
            (*file).pMethods = ptr::null();
            return ffi::SQLITE_CANTOPEN;
        };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return unix_open(unix, name, file, flags, out_flags);
        }
        let inner = file
            .cast::<u8>()
            .add(WalFile::INNER_OFFSET)
            .cast::<ffi::sqlite3_file>();
        let rc = unix_open(unix, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK || (*inner).pMethods.is_null() {
            // SQLite closes nothing whose methods are null.
            (*file).pMethods = ptr::null();
            return if rc != ffi::SQLITE_OK {
                rc
            } else {
                ffi::SQLITE_CANTOPEN
            };
        }
        ptr::write(
            file.cast::<WalFile>(),
            WalFile {
                base: ffi::sqlite3_file {
                    pMethods: &WAL_METHODS,
                },
                inner,
                held: None,
                buf: Vec::new(),
                start: 0,
                last_read: None,
                writes: 0,
            },
        );
        ffi::SQLITE_OK
    }
}

/// The methods of a `WalFile`: each writes what is pending first, except a
/// write, then calls the unix VFS's method on the inner file.
static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(wal_close),
    xRead: Some(wal_read),
    xWrite: Some(wal_write),
    xTruncate: Some(wal_truncate),
    xSync: Some(wal_sync),
    xFileSize: Some(wal_file_size),
    xLock: Some(wal_lock),
    xUnlock: Some(wal_unlock),
    xCheckReservedLock: Some(wal_check_reserved_lock),
    xFileControl: Some(wal_file_control),
    xSectorSize: Some(wal_sector_size),
    xDeviceCharacteristics: Some(wal_device_characteristics),
    xShmMap: Some(wal_shm_map),
    xShmLock: Some(wal_shm_lock),
    xShmBarrier: Some(wal_shm_barrier),
    xShmUnmap: Some(wal_shm_unmap),
    xFetch: Some(wal_fetch),
    xUnfetch: Some(wal_unfetch),
};

/// The `WalFile` behind a file SQLite calls one of `WAL_METHODS` on.
///
/// # Safety
/// `file` was opened by `open` as a WAL file and is not closed, and SQLite
/// calls no other method on it meanwhile (a file belongs to one connection,
/// used by one thread at a time).
unsafe fn wal_file<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    // SAFETY: the caller's.
    unsafe { &mut *file.cast::<WalFile>() }
}

/// Calls the inner file's method `$m` after writing what is pending; a
/// failed write is the call's error. `$missing` when the unix VFS has no
/// such method.
macro_rules! forward {
    ($file:expr, $m:ident, $missing:expr $(, $arg:expr)*) => {{
        // SAFETY: SQLite calls WAL_METHODS only on files `open` made WAL
        // files, until their close (see `wal_file`).
        let f = unsafe { wal_file($file) };
        // SAFETY: the inner file is open until `wal_close`.
        let rc = unsafe { f.flush() };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        // SAFETY: as above; the arguments are SQLite's, passed on.
        match unsafe { f.methods() }.$m {
            Some(m) => unsafe { m(f.inner $(, $arg)*) },
            None => $missing,
        }
    }};
}

unsafe extern "C" fn wal_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: see `wal_file`; after this SQLite calls nothing on the file.
    unsafe {
        let f = wal_file(file);
        let flushed = f.flush();
        let closed = match f.methods().xClose {
            Some(close) => close(f.inner),
            None => ffi::SQLITE_OK,
        };
        ptr::drop_in_place(file.cast::<WalFile>());
        (*file).pMethods = ptr::null();
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

unsafe extern "C" fn wal_read(
    file: *mut ffi::sqlite3_file,
    out: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let rc = forward!(file, xRead, ffi::SQLITE_IOERR_READ, out, amount, offset);
    // SAFETY: see `wal_file`.
    unsafe { wal_file(file) }.last_read = Some(offset);
    rc
}

unsafe extern "C" fn wal_write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // SAFETY: SQLite passes `amount` readable octets at `data`, borrowed
    // for this call only (copied before it returns).
    let data = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
    // SAFETY: see `wal_file`; the inner file is open.
    unsafe { wal_file(file).write(data, offset) }
}

unsafe extern "C" fn wal_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    forward!(file, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, size)
}

unsafe extern "C" fn wal_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    forward!(file, xSync, ffi::SQLITE_IOERR_FSYNC, flags)
}

unsafe extern "C" fn wal_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    forward!(file, xFileSize, ffi::SQLITE_IOERR_FSTAT, size)
}

unsafe extern "C" fn wal_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(file, xLock, ffi::SQLITE_IOERR_LOCK, level)
}

unsafe extern "C" fn wal_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(file, xUnlock, ffi::SQLITE_IOERR_UNLOCK, level)
}

unsafe extern "C" fn wal_check_reserved_lock(
    file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    forward!(
        file,
        xCheckReservedLock,
        ffi::SQLITE_IOERR_CHECKRESERVEDLOCK,
        out
    )
}

unsafe extern "C" fn wal_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    forward!(file, xFileControl, ffi::SQLITE_NOTFOUND, op, arg)
}

unsafe extern "C" fn wal_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: see `wal_file`; reads nothing pending.
    let f = unsafe { wal_file(file) };
    match unsafe { f.methods() }.xSectorSize {
        Some(m) => unsafe { m(f.inner) },
        None => 4096,
    }
}

unsafe extern "C" fn wal_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: see `wal_file`; reads nothing pending.
    let f = unsafe { wal_file(file) };
    match unsafe { f.methods() }.xDeviceCharacteristics {
        Some(m) => unsafe { m(f.inner) },
        None => 0,
    }
}

unsafe extern "C" fn wal_shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    page_size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    forward!(
        file,
        xShmMap,
        ffi::SQLITE_IOERR_SHMMAP,
        page,
        page_size,
        extend,
        out
    )
}

unsafe extern "C" fn wal_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    forward!(file, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, offset, n, flags)
}

unsafe extern "C" fn wal_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: see `wal_file`. SQLite calls the barrier on the database
    // file, never on the WAL; passed on all the same.
    let f = unsafe { wal_file(file) };
    let _ = unsafe { f.flush() };
    if let Some(m) = unsafe { f.methods() }.xShmBarrier {
        unsafe { m(f.inner) }
    }
}

unsafe extern "C" fn wal_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    forward!(file, xShmUnmap, ffi::SQLITE_OK, delete)
}

unsafe extern "C" fn wal_fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // No mapping: SQLite reads instead.
    // SAFETY: SQLite passes a valid out pointer.
    unsafe { *out = ptr::null_mut() };
    let _ = (file, offset, amount);
    ffi::SQLITE_OK
}

unsafe extern "C" fn wal_unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    let _ = (file, offset, page);
    ffi::SQLITE_OK
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::{ConnectOptions, Connection, SqliteConnection};

    use super::*;
    use crate::store::raw::Db;

    /// A connection in WAL mode, through this VFS or SQLite's own, with a
    /// page cache of `cache_pages`, never checkpointing by itself.
    async fn connect(path: &Path, ours: bool, cache_pages: u32) -> SqliteConnection {
        register().expect("register");
        let mut options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .page_size(8192)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .pragma("cache_size", cache_pages.to_string())
            .pragma("wal_autocheckpoint", "0");
        if ours {
            options = options.vfs(NAME);
        }
        options.connect().await.expect("connect")
    }

    /// Row `i`'s text: long enough that a few rows fill a page.
    fn text(i: i64, round: u8) -> String {
        format!("{i}:{round}:{}", "x".repeat(2000 + (i % 97) as usize))
    }

    /// Runs `sql` on `conn`'s raw handle, on this thread.
    async fn exec(conn: &mut SqliteConnection, sql: &[&str]) -> Vec<u64> {
        let mut locked = conn.lock_handle().await.expect("lock");
        let handle = locked.as_raw_handle();
        // SAFETY: the lock is held until `db` is dropped, at the end.
        let db = unsafe { Db::new(handle) };
        let mut writes = Vec::new();
        for s in sql {
            db.exec(s).expect(s);
            writes.push(wal_writes(handle));
        }
        writes
    }

    /// The writes made so far to the WAL of the connection on `handle`
    /// (held, on this VFS).
    fn wal_writes(handle: NonNull<ffi::sqlite3>) -> u64 {
        let mut wal: *mut ffi::sqlite3_file = ptr::null_mut();
        // SAFETY: a valid handle; the journal pointer is written to `wal`.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                handle.as_ptr(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_JOURNAL_POINTER,
                (&raw mut wal).cast(),
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK);
        assert!(!wal.is_null());
        // SAFETY: the connection is on this VFS, so its WAL file is a
        // WalFile while it is open.
        unsafe {
            assert!(ptr::eq((*wal).pMethods, &WAL_METHODS));
            (*wal.cast::<WalFile>()).writes
        }
    }

    /// What a connection on SQLite's own VFS reads of the database at
    /// `path`: its integrity check, and every row's id and text.
    async fn read_back(path: &Path) -> (String, Vec<(i64, String)>) {
        let mut conn = connect(path, false, 100).await;
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .expect("check");
        let rows = sqlx::query_as("SELECT id, t FROM t ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .expect("rows");
        conn.close().await.expect("close");
        (check, rows)
    }

    /// The files of the database at `from` as a crash would leave them
    /// (what was written, synced or not, the OS having survived): the
    /// database and its WAL copied while the connection is still open,
    /// without the WAL index, which a crash leaves to be rebuilt.
    fn crash_copy(from: &Path, to: &Path) {
        std::fs::copy(from, to).expect("copy");
        let wal = |p: &Path| format!("{}-wal", p.display());
        std::fs::copy(wal(from), wal(to)).expect("copy wal");
    }

    fn inserts(from: i64, to: i64, round: u8) -> Vec<String> {
        (from..to)
            .map(|i| format!("INSERT INTO t (id, t) VALUES ({i}, '{}')", text(i, round)))
            .collect()
    }

    /// `statements` between BEGIN and COMMIT.
    fn transaction(statements: Vec<String>) -> Vec<String> {
        let mut sql = vec!["BEGIN".to_owned()];
        sql.extend(statements);
        sql.push("COMMIT".into());
        sql
    }

    fn expected(ids: std::ops::Range<i64>, round: impl Fn(i64) -> u8) -> Vec<(i64, String)> {
        ids.map(|i| (i, text(i, round(i)))).collect()
    }

    /// A new database `t.db` in `dir` with its table, on a connection
    /// through this VFS with a cache of `cache_pages`.
    async fn fresh(dir: &Path, cache_pages: u32) -> (std::path::PathBuf, SqliteConnection) {
        let path = dir.join("t.db");
        let mut conn = connect(&path, true, cache_pages).await;
        run(
            &mut conn,
            vec!["CREATE TABLE t (id INTEGER PRIMARY KEY, t TEXT)".into()],
        )
        .await;
        (path, conn)
    }

    /// Runs `sql` on `conn`; the WAL's writes after each statement.
    async fn run(conn: &mut SqliteConnection, sql: Vec<String>) -> Vec<u64> {
        let sql: Vec<&str> = sql.iter().map(String::as_str).collect();
        exec(conn, &sql).await
    }

    /// The database at `path` holds exactly `want`, whole, read by a
    /// connection on SQLite's own VFS, and so does a crash copy of it.
    async fn assert_holds(path: &Path, want: Vec<(i64, String)>) {
        assert_eq!(read_back(path).await, ("ok".into(), want.clone()));
        let copy = path.with_extension("copy");
        crash_copy(path, &copy);
        assert_eq!(read_back(&copy).await, ("ok".into(), want));
    }

    #[tokio::test]
    async fn a_commit_is_written_in_one_call_and_read_by_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut conn) = fresh(dir.path(), 1000).await;
        let writes = run(&mut conn, transaction(inserts(1, 41, 0))).await;
        // Forty rows of ~2 KiB are ten pages and more: nothing is written
        // before the commit, and the commit's frames go in one call.
        assert_eq!(writes[writes.len() - 2], writes[0], "{writes:?}");
        assert_eq!(writes[writes.len() - 1], writes[0] + 1, "{writes:?}");
        assert_holds(&path, expected(1..41, |_| 0)).await;
        conn.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_large_commit_is_written_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut conn) = fresh(dir.path(), 100_000).await;
        // ~3 MiB in one transaction: more than `FLUSH_BYTES`, written in
        // calls of `WRITE_CALL_BYTES`.
        let writes = run(&mut conn, transaction(inserts(1, 1501, 0))).await;
        let calls = writes[writes.len() - 1] - writes[0];
        assert!((20..60).contains(&calls), "{calls} writes");
        assert_holds(&path, expected(1..1501, |_| 0)).await;
        conn.close().await.expect("close");
    }

    #[tokio::test]
    async fn frames_spilled_and_rewritten_in_a_transaction_are_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A cache of 10 pages: the transaction spills to the WAL long
        // before its commit, reads its spilled pages back, rewrites them in
        // place, and SQLite rewrites the checksums of the frames after.
        // Recovery (of the crash copy) reads the WAL alone, checksum by
        // checksum: a frame or header left unwritten would end the log
        // before the commit.
        let (path, mut conn) = fresh(dir.path(), 10).await;
        let rewrite = "UPDATE t SET t = replace(t, ':0:', ':1:') WHERE id % 3 = 0";
        let mut sql = inserts(1, 301, 0);
        sql.push(rewrite.into());
        sql.push("SELECT count(*) FROM t WHERE t LIKE '%:1:%'".into());
        sql.extend(inserts(301, 401, 0));
        sql.push(rewrite.into());
        run(&mut conn, transaction(sql)).await;
        assert_holds(&path, expected(1..401, |i| u8::from(i % 3 == 0))).await;
        conn.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_transaction_rolled_back_after_spilling_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut conn) = fresh(dir.path(), 10).await;
        let mut sql = vec!["BEGIN".to_owned()];
        sql.extend(inserts(1, 201, 0));
        sql.push("ROLLBACK".into());
        // The next transaction's frames go where the spilled ones were.
        sql.extend(transaction(inserts(1001, 1011, 2)));
        run(&mut conn, sql).await;
        assert_holds(&path, expected(1001..1011, |_| 2)).await;
        conn.close().await.expect("close");
    }

    #[tokio::test]
    async fn the_wal_restarts_and_is_checkpointed_through_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, mut conn) = fresh(dir.path(), 1000).await;
        for round in 0..4 {
            let mut sql = transaction(inserts(round * 50 + 1, round * 50 + 51, 0));
            // The checkpoint reads the WAL through this file, and the next
            // commit starts the WAL again from its header.
            sql.push("PRAGMA wal_checkpoint(PASSIVE)".into());
            run(&mut conn, sql).await;
        }
        assert_holds(&path, expected(1..201, |_| 0)).await;
        conn.close().await.expect("close");
    }
}
