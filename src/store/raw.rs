//! Prepared statements on sqlx's raw SQLite handle, for the writer's hot loop.
//!
//! Why: each sqlx statement is a message to the connection's worker thread
//! (~20 µs); the writer runs several statements per article, so it calls
//! SQLite directly on the handle that `SqliteConnection::lock_handle()` lends
//! (STORAGE-NOTES.md: 16,700 -> 41,300+ articles/s). All `unsafe` of the crate
//! is in this file.
//!
//! Safety contract: a `Db` is built from the handle of a `LockedSqliteHandle`
//! and must not outlive it; every `Stmt` must be dropped (finalized) before the
//! `Db` and the lock are, because sqlx's close fails on unfinalized statements.
//! The writer owns all three in one scope, in that order.

use std::ffi::{CStr, c_int};
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

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
