//! Prepared statements on sqlx's raw SQLite handle, for the writer's hot loop.
//!
//! Why: each sqlx statement is a message to the connection's worker thread
//! (~20 µs); the writer runs several statements per article, so it calls
//! SQLite directly on the handle that `SqliteConnection::lock_handle()` lends
//! (STORAGE-NOTES.md: 16,700 -> 41,300+ articles/s). The crate's calls into
//! SQLite's C API are in this file and in `walvfs` (the writer's WAL file).
//!
//! Safety contract: a `Db` is built from the handle of a `LockedSqliteHandle`
//! and must not outlive it; every `Stmt` must be dropped (finalized) before the
//! `Db` and the lock are, because sqlx's close fails on unfinalized statements.
//! The writer owns all three in one scope, in that order.

use std::cell::Cell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

/// Turns off SQLite's memory statistics for the whole process, before its
/// first connection: with them on, every allocation SQLite makes takes a
/// global mutex (its status counters), which every connection's thread
/// then contends for. No one reads them here. Later calls, and a call
/// after a connection was opened elsewhere (SQLite refuses then), change
/// nothing.
pub fn quiet_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int. sqlite3_config is
        // not thread-safe against itself or an initialisation under way;
        // the Once serialises our calls, and a library initialised already
        // answers SQLITE_MISUSE without changing anything.
        let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
        if rc != ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite memory statistics left on");
        }
    });
}

/// A raw connection, borrowed from sqlx for the lifetime of a lock.
pub struct Db {
    handle: NonNull<ffi::sqlite3>,
}

/// An SQLite error from the raw API: result code and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("sqlite error {code}: {message}")]
pub struct RawError {
    pub code: i32,
    pub message: String,
}

impl RawError {
    /// The database reached its `max_page_count`, or the disk is full.
    pub fn is_full(&self) -> bool {
        self.code & 0xff == ffi::SQLITE_FULL
    }

    /// Another connection holds a lock this needed.
    pub fn is_busy(&self) -> bool {
        self.code & 0xff == ffi::SQLITE_BUSY
    }
}

impl Db {
    /// # Safety
    /// `handle` must be a valid open connection that no one else uses while
    /// this `Db` (and every statement prepared on it) is alive.
    pub unsafe fn new(handle: NonNull<ffi::sqlite3>) -> Db {
        Db { handle }
    }

    fn error(&self, code: c_int) -> RawError {
        // SAFETY: the handle is valid (constructor contract); errmsg returns a
        // NUL-terminated string owned by SQLite, copied before the next call.
        let message = unsafe {
            let msg = ffi::sqlite3_errmsg(self.handle.as_ptr());
            if msg.is_null() {
                String::from("unknown error")
            } else {
                CStr::from_ptr(msg).to_string_lossy().into_owned()
            }
        };
        RawError { code, message }
    }

    /// Runs SQL without results (BEGIN, COMMIT, ROLLBACK, PRAGMA ...).
    pub fn exec(&self, sql: &str) -> Result<(), RawError> {
        let sql = std::ffi::CString::new(sql).map_err(|_| RawError {
            code: ffi::SQLITE_MISUSE,
            message: "NUL in SQL".into(),
        })?;
        // SAFETY: valid handle and NUL-terminated SQL; no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.handle.as_ptr(),
                sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.error(rc))
        }
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE that ran here.
    pub fn changes(&self) -> i64 {
        // SAFETY: valid handle.
        unsafe { ffi::sqlite3_changes64(self.handle.as_ptr()) }
    }

    /// Has SQLite note in `frames` how many frames the WAL holds after each
    /// commit on this connection, until the returned guard is dropped. This
    /// replaces SQLite's automatic checkpoints (`wal_autocheckpoint`): the
    /// caller checkpoints, with `checkpoint`, when it sees fit.
    pub fn watch_wal<'a>(&'a self, frames: &'a WalFrames) -> WalWatch<'a> {
        let arg: *const WalFrames = frames;
        // SAFETY: valid handle; `arg` stays valid until the guard, which
        // borrows `frames`, removes the hook. SQLite calls the hook only
        // from within a commit on this connection, on the thread that
        // commits, the thread that owns `frames` (`WalFrames` is not Sync).
        unsafe {
            ffi::sqlite3_wal_hook(
                self.handle.as_ptr(),
                Some(note_wal_frames),
                arg.cast_mut().cast(),
            );
        }
        WalWatch {
            db: self,
            _frames: PhantomData,
        }
    }

    /// A passive checkpoint of the main database: copies every WAL frame
    /// it can into the database without waiting for anyone, and syncs the
    /// database file when it copied them all (`synchronous` NORMAL or
    /// FULL). Returns the frames in the WAL and how many are copied.
    pub fn checkpoint(&self) -> Result<(i64, i64), RawError> {
        let (mut frames, mut copied): (c_int, c_int) = (0, 0);
        // SAFETY: valid handle, NUL-terminated name, out-pointers to locals.
        let rc = unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                self.handle.as_ptr(),
                c"main".as_ptr(),
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                &mut frames,
                &mut copied,
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok((frames.into(), copied.into()))
        } else {
            Err(self.error(rc))
        }
    }

    /// Prepares a statement that will be reused (SQLITE_PREPARE_PERSISTENT).
    pub fn prepare<'db>(&'db self, sql: &str) -> Result<Stmt<'db>, RawError> {
        let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
        // SAFETY: valid handle; sql pointer+length describe a live &str.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.handle.as_ptr(),
                sql.as_ptr().cast(),
                sql.len() as c_int,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        match NonNull::new(stmt) {
            Some(stmt) if rc == ffi::SQLITE_OK => Ok(Stmt { db: self, stmt }),
            _ => Err(self.error(rc)),
        }
    }
}

/// The WAL's length in frames after the last commit of a watched
/// connection (`Db::watch_wal`); 0 until the first.
#[derive(Debug, Default)]
pub struct WalFrames(Cell<i64>);

impl WalFrames {
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// Keeps a WAL hook in place; removes it, restoring no automatic
/// checkpoints, when dropped.
pub struct WalWatch<'a> {
    db: &'a Db,
    _frames: PhantomData<&'a WalFrames>,
}

impl Drop for WalWatch<'_> {
    fn drop(&mut self) {
        // SAFETY: valid handle; removing the hook is always allowed.
        unsafe {
            ffi::sqlite3_wal_hook(self.db.handle.as_ptr(), None, ptr::null_mut());
        }
    }
}

/// The WAL hook of `Db::watch_wal`.
unsafe extern "C" fn note_wal_frames(
    arg: *mut c_void,
    _db: *mut ffi::sqlite3,
    _name: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: `arg` is the `WalFrames` that `watch_wal` registered, alive
    // while the hook is (see there).
    let watched = unsafe { &*arg.cast::<WalFrames>() };
    watched.0.set(frames.into());
    ffi::SQLITE_OK
}

/// One prepared statement; finalized on drop.
pub struct Stmt<'db> {
    db: &'db Db,
    stmt: NonNull<ffi::sqlite3_stmt>,
}

/// What `step` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Row,
    Done,
}

impl Stmt<'_> {
    fn check(&self, rc: c_int) -> Result<(), RawError> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.db.error(rc))
        }
    }

    /// Binds an integer to parameter `i` (1-based).
    pub fn bind_i64(&mut self, i: c_int, v: i64) -> Result<(), RawError> {
        // SAFETY: valid statement; out-of-range i is reported as SQLITE_RANGE.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.stmt.as_ptr(), i, v) };
        self.check(rc)
    }

    /// Binds text to parameter `i`; SQLite copies it (SQLITE_TRANSIENT).
    pub fn bind_text(&mut self, i: c_int, v: &str) -> Result<(), RawError> {
        // SAFETY: pointer and length describe a live str; TRANSIENT makes
        // SQLite copy it before returning, so no lifetime is carried over.
        let rc = unsafe {
            ffi::sqlite3_bind_text64(
                self.stmt.as_ptr(),
                i,
                v.as_ptr().cast(),
                v.len() as u64,
                ffi::SQLITE_TRANSIENT(),
                ffi::SQLITE_UTF8 as u8,
            )
        };
        self.check(rc)
    }

    /// Binds a blob to parameter `i`; SQLite copies it (SQLITE_TRANSIENT).
    pub fn bind_blob(&mut self, i: c_int, v: &[u8]) -> Result<(), RawError> {
        // SAFETY: as bind_text.
        let rc = unsafe {
            ffi::sqlite3_bind_blob64(
                self.stmt.as_ptr(),
                i,
                v.as_ptr().cast(),
                v.len() as u64,
                ffi::SQLITE_TRANSIENT(),
            )
        };
        self.check(rc)
    }

    /// Runs the statement one step.
    pub fn step(&mut self) -> Result<Step, RawError> {
        // SAFETY: valid statement.
        let rc = unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) };
        match rc {
            ffi::SQLITE_ROW => Ok(Step::Row),
            ffi::SQLITE_DONE => Ok(Step::Done),
            _ => Err(self.db.error(rc)),
        }
    }

    /// Integer value of column `i` (0-based) of the current row.
    pub fn column_i64(&self, i: c_int) -> i64 {
        // SAFETY: valid statement; SQLite returns 0 for an out-of-range column.
        unsafe { ffi::sqlite3_column_int64(self.stmt.as_ptr(), i) }
    }

    /// The bytes of column `i` of the current row (text or blob), valid
    /// while `self` is borrowed: the next step or reset needs `&mut self`.
    fn column_bytes(&self, i: c_int) -> &[u8] {
        // SAFETY: valid statement; SQLite keeps the value until the next
        // step/reset/finalize, none of which can happen while the borrow
        // lives. NULL or empty -> empty.
        unsafe {
            let p = ffi::sqlite3_column_blob(self.stmt.as_ptr(), i);
            let n = ffi::sqlite3_column_bytes(self.stmt.as_ptr(), i);
            if p.is_null() || n <= 0 {
                &[]
            } else {
                std::slice::from_raw_parts(p.cast::<u8>(), n as usize)
            }
        }
    }

    /// Text value of column `i` of the current row, copied.
    pub fn column_text(&self, i: c_int) -> String {
        String::from_utf8_lossy(self.column_bytes(i)).into_owned()
    }

    /// Blob value of column `i` of the current row, copied.
    pub fn column_blob(&self, i: c_int) -> Vec<u8> {
        self.column_bytes(i).to_vec()
    }

    /// Resets the statement for reuse and clears its bindings.
    pub fn reset(&mut self) {
        // SAFETY: valid statement. reset's return repeats the last step's
        // error, which the caller has already seen.
        unsafe {
            ffi::sqlite3_reset(self.stmt.as_ptr());
            ffi::sqlite3_clear_bindings(self.stmt.as_ptr());
        }
    }

    /// Runs a query one step and resets it: what `read` takes from the
    /// first row, `None` when there is no row.
    pub fn first_row<T>(&mut self, read: impl FnOnce(&Self) -> T) -> Result<Option<T>, RawError> {
        let r = match self.step() {
            Ok(Step::Row) => Ok(Some(read(self))),
            Ok(Step::Done) => Ok(None),
            Err(e) => Err(e),
        };
        self.reset();
        r
    }

    /// The first row's column 0 as an integer (`first_row`).
    pub fn first_i64(&mut self) -> Result<Option<i64>, RawError> {
        self.first_row(|s| s.column_i64(0))
    }

    /// Runs a statement that returns no rows, then resets it.
    pub fn execute(&mut self) -> Result<(), RawError> {
        let r = self.step();
        self.reset();
        r.map(|_| ())
    }
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on a live Db (borrow) and is
        // finalized exactly once.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}
