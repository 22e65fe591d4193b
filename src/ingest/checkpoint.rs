//! Copies the WAL into the database ahead of the writer, and has the WAL
//! go round inside a file written in advance.
//!
//! Left to SQLite, the connection whose commit takes the WAL past its
//! threshold checkpoints: the writer would copy ~40 MiB of frames into the
//! database between two batches, while streaming peers wait for their
//! answers. Instead this thread runs a passive checkpoint (it never blocks
//! the writer or a reader) after every few MiB of articles committed, and
//! writes the database file back in small steps, then syncs it (see
//! `run`).
//!
//! The WAL starts again from its beginning only at a transaction after a
//! checkpoint that copied every frame, and only the writer can be sure of
//! that: once the WAL is due to restart (`storage.wal_size_mib`) and the
//! thread has copied all but the last few frames, the writer checkpoints
//! those itself (~2-3 ms). The file is written in full at start
//! (`presize_wal`), so no sync that acknowledges articles waits for it to
//! grow.
//!
//! Measured on the 2-core test VM, one connection of pipelined
//! CHECK/TAKETHIS, window 64, interleaved runs of 100,000 articles, against
//! SQLite's own checkpoint at 5,000 frames with this thread copying ahead
//! (session 11): means 34.3k -> 40.0k articles/s (four each); window 256
//! 46.1k/49.2k -> 52.6k/58.5k; CHECK first 24.2k/24.5k -> 31.1k/26.1k; 20
//! KiB articles 10.5k/11.5k -> 12.1k/14.5k; four connections and lock-step
//! IHAVE the same or better. The writer's pause at a restart went from ~20
//! ms every 5,000 frames (~50 ms every 15,000 frames, before the thread
//! synced the database) to ~2.5 ms every ~15,000.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::FileSync;
use crate::store::Store;
use crate::store::raw::Db;

/// Article bytes committed between two checkpoints of the thread, when
/// articles stream in: ~1,900 articles of 2 KiB, ~1,000-1,300 WAL frames of
/// 8 KiB (commits of 16 to 48 articles write 7 frames plus ~0.4 per
/// article). Each checkpoint copies a page once however often it was
/// rewritten since the last one (the overview and history leaves, the
/// interior pages, the group row), and syncs the database file once.
/// Medians of interleaved runs against 1 MiB, one connection, CHECK and
/// TAKETHIS back to back: window 64 34.9k -> 38.2k/s, window 256 44.4k ->
/// 46.3k/s (300k articles); the checkpoint's CPU fell from ~4.4 to ~2.9 µs
/// per article. Window 20 and lock-step IHAVE: the same.
const NUDGE_BYTES: usize = 4 << 20;

/// Commits between two checkpoints of the thread, whatever their size: a
/// lock-step peer sends one article per commit, and each commit rewrites ~4
/// pages, so 4 MiB of its articles would be 8,000 frames. 400 commits are
/// ~1,600 frames. (Checkpointing every 10 ms instead made some lock-step
/// IHAVE runs a quarter slower: its syncs queue behind the checkpoint's.)
const NUDGE_COMMITS: usize = 400;

/// How many frames the thread may have left uncopied for the writer's own
/// checkpoint to restart the WAL: the writer waits through the copy and
/// the database's sync. A checkpoint of the thread takes long enough for
/// the writer to add ~1,000 frames; the next ones take less, so a few
/// checkpoints in a row bring it down to this.
const LEFT_FRAMES: i64 = 256;

/// The database file is written back in steps of this many bytes where
/// the checkpoint appended pages, before it is synced (`run`). One sync of
/// the ~11 MiB a checkpoint copies took ~4 ms on the 2-core test VM, and the
/// WAL sync that acknowledged the next batch waited behind it, every time
/// (114 of 114 syncs over 1 ms in a run of 200,000 articles overlapped a
/// checkpoint): ~10% of the run with every peer waiting for answers. In
/// steps, such a sync waits behind one step at most. Measured with
/// interleaved runs (means, one connection, pipelined CHECK/TAKETHIS):
/// window 64 54.7k -> 59.7k articles/s (eight runs each); into a history
/// of 10 million ids 46.5k -> 56.4k (two pairs); window 256 70.0k -> 77.6k
/// in one set of three runs, the same in another of four (90.6k, 91.4k:
/// CPU-bound there); 20 KiB articles 12.7k -> 13.6k; lock-step IHAVE the
/// same or better. Steps of 64 KiB to 1 MiB did about as well; 4 MiB less.
const DENSE_STEP_BYTES: u64 = 256 << 10;

/// Steps in the rest of the file, where a checkpoint rewrote a few pages
/// here and there (overview, history, interior pages): each step holds
/// few dirty pages, and a step over clean pages costs next to nothing.
/// Steps of 2 MiB did no better than none in one set of four runs (mean
/// 52.2k against 52.7k).
const SPARSE_STEP_BYTES: u64 = 8 << 20;

/// At most this many steps in that part, however large the file: a step
/// costs a system call of ~2 µs even over clean pages, and a 50 GiB
/// database would take 6,400 steps of 8 MiB per checkpoint.
const SPARSE_STEPS: u64 = 64;

/// Bytes of a WAL frame: a page (`store::PAGE_BYTES`) and its header.
const FRAME_BYTES: u64 = crate::store::PAGE_BYTES as u64 + 24;

/// Bytes of the WAL's own header, before the first frame.
const WAL_HEADER_BYTES: u64 = 32;

/// The fewest frames the WAL is let grow to before it restarts.
const MIN_RESTART_FRAMES: i64 = 128;

/// How long the WAL is let grow, in frames, before it restarts, for a WAL
/// file of `bytes`: three quarters of what the file holds, as the writer
/// adds frames until the thread has caught up (at least
/// `MIN_RESTART_FRAMES`).
pub(super) fn restart_frames(bytes: u64) -> i64 {
    let frames = bytes.saturating_sub(WAL_HEADER_BYTES) / FRAME_BYTES * 3 / 4;
    i64::try_from(frames)
        .unwrap_or(i64::MAX)
        .max(MIN_RESTART_FRAMES)
}

/// What the writer and the thread both see.
#[derive(Default)]
struct Shared {
    /// The thread has been nudged and has not finished its checkpoint.
    busy: AtomicBool,
    /// The WAL frames copied as of the thread's last checkpoint.
    copied: AtomicI64,
}

/// The writer's side: `committed` after each commit.
pub(super) struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    /// The WAL's length, in frames, at which the writer has it start again
    /// from its beginning (`storage.wal_size_mib`). It restarts at the
    /// first transaction after a checkpoint that copied every frame, and
    /// only the writer can be sure of that: it checkpoints itself, once
    /// the thread has copied all but the last few frames (`LEFT_FRAMES`).
    /// Past four times this, it checkpoints whatever is left (the thread
    /// cannot keep up, or is gone).
    restart_frames: i64,
    /// Article bytes committed since the last nudge.
    since: usize,
    /// Commits since the last nudge.
    commits: usize,
}

impl Checkpointer {
    /// Starts the thread on a connection of its own.
    pub(super) fn start(
        runtime: tokio::runtime::Handle,
        store: Store,
        restart_frames: i64,
    ) -> std::io::Result<Checkpointer> {
        let (nudge, rx) = mpsc::sync_channel(1);
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("tidings-checkpoint".into())
                .spawn(move || run(runtime, store, rx, shared))?
        };
        Ok(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
            shared,
            restart_frames,
            since: 0,
            commits: 0,
        })
    }

    /// Counts a commit of `bytes` of articles that left `frames` in the
    /// WAL. Tells the thread to checkpoint once commits add up to
    /// `NUDGE_BYTES` or `NUDGE_COMMITS`, and again and again while the WAL
    /// is due to restart. True when the writer should checkpoint itself
    /// now (`checkpoint_here`): the WAL is due to restart and the thread
    /// left little to copy, or is gone. Never blocks.
    pub(super) fn committed(&mut self, bytes: usize, frames: i64) -> bool {
        self.since += bytes;
        self.commits += 1;
        if frames >= self.restart_frames {
            let idle = !self.shared.busy.load(Ordering::Acquire);
            let left = frames - self.shared.copied.load(Ordering::Acquire);
            let alone = self.nudge.is_none();
            if alone || frames >= 4 * self.restart_frames || (idle && left <= LEFT_FRAMES) {
                return true;
            }
            if idle {
                self.nudge();
            }
        } else if self.since >= NUDGE_BYTES || self.commits >= NUDGE_COMMITS {
            self.nudge();
        }
        false
    }

    /// Checkpoints on the writer's connection: the WAL restarts at the
    /// next transaction (unless a reader still reads an old snapshot).
    pub(super) fn checkpoint_here(&mut self, db: &Db) {
        let started = Instant::now();
        match db.checkpoint() {
            Ok((frames, copied)) => {
                debug!(
                    frames,
                    copied,
                    micros = started.elapsed().as_micros() as u64,
                    "checkpoint on the writer"
                )
            }
            // The thread's checkpoint, begun since `committed` looked:
            // the next commit looks again.
            Err(e) if e.is_busy() => {
                debug!("checkpoint on the writer: the thread is checkpointing");
                return;
            }
            Err(e) => warn!("checkpoint on the writer failed: {e}"),
        }
        // What the thread copied was of the WAL before the restart.
        self.shared.copied.store(0, Ordering::Release);
    }

    /// Asks the thread for a checkpoint, unless it has one to do already.
    fn nudge(&mut self) {
        self.since = 0;
        self.commits = 0;
        let Some(nudge) = &self.nudge else { return };
        // Busy from now: the thread may be done before `try_send` returns.
        self.shared.busy.store(true, Ordering::Release);
        if let Err(TrySendError::Disconnected(())) = nudge.try_send(()) {
            debug!("checkpoint thread is gone");
            self.nudge = None;
            self.shared.busy.store(false, Ordering::Release);
        }
    }
}

/// Gives the WAL file `bytes` of real blocks in advance, filled with
/// zeros. A sync of a file that grew must write its inode too; so while a
/// new WAL grows, every acknowledgement waits longer (~700 µs per sync
/// against ~280 µs on the 2-core test VM, for the first ~40 MiB). Zeros
/// past the last frame are never taken for frames: a frame counts only
/// with the WAL header's salt and a good checksum.
///
/// It holds the write lock meanwhile (`BEGIN IMMEDIATE`), so no other
/// connection appends a frame where it writes. Failures are logged: the
/// WAL then grows as it would have.
pub(super) fn presize_wal(db: &Db, path: &Path, bytes: u64) {
    if let Err(e) = db.exec("BEGIN IMMEDIATE") {
        warn!("cannot lock the database to size its WAL: {e}");
        return;
    }
    let started = Instant::now();
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| {
            let from = file.metadata()?.len();
            let zeros = vec![0u8; 1 << 20];
            let mut at = from;
            while at < bytes {
                let n = (bytes - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            if at > from {
                file.sync_data()?;
            }
            Ok(at - from)
        });
    if let Err(e) = db.exec("ROLLBACK") {
        warn!("ending the transaction that sized the WAL: {e}");
    }
    match written {
        Ok(0) => {}
        Ok(_) => info!(
            "wrote the WAL's {} MiB in advance in {} ms",
            bytes >> 20,
            started.elapsed().as_millis()
        ),
        Err(e) => warn!("cannot size the WAL {}: {e}", path.display()),
    }
}

impl Drop for Checkpointer {
    /// Stops the thread and waits for it (it closes its connection).
    fn drop(&mut self) {
        drop(self.nudge.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(runtime: tokio::runtime::Handle, store: Store, rx: Receiver<()>, shared: Arc<Shared>) {
    let mut conn = match runtime.block_on(store.checkpoint_connection()) {
        Ok(c) => c,
        Err(e) => {
            // The writer's own checkpoints still keep the WAL bounded.
            warn!("no checkpoint connection, the writer checkpoints alone: {e}");
            return;
        }
    };
    // SQLite syncs the database file only at the end of a checkpoint that
    // copied every frame in the WAL, and while articles stream in the
    // writer adds frames meanwhile: left to SQLite, none of the thread's
    // checkpoints would be synced, and the writer's own, restarting the
    // WAL, waited for tens of MiB to reach the disk (~50 ms on the 2-core
    // test VM, every 15,000 frames) while every peer waited for answers.
    let mut database = FileSync::new(store.path().to_owned());
    // Where the database file ended at the last checkpoint (at first, when
    // the server started), give or take a step: pages after it are new.
    // From 0, the first checkpoint would walk a large file in small steps
    // (a 100 GiB one in 400,000 system calls).
    let mut appended_from = std::fs::metadata(store.path()).map_or(0, |m| m.len());
    while rx.recv().is_ok() {
        shared.busy.store(true, Ordering::Release);
        let started = Instant::now();
        let done: Result<(i64, i64, i64), sqlx::Error> =
            runtime.block_on(sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut conn));
        match done {
            Ok((busy, frames, copied)) => {
                let sparse = SPARSE_STEP_BYTES.max(appended_from / SPARSE_STEPS);
                appended_from = database
                    .write_back(appended_from, DENSE_STEP_BYTES, sparse)
                    .saturating_sub(DENSE_STEP_BYTES);
                // On failure the writer's checkpoint syncs the file anyway.
                if let Err(e) = database.sync() {
                    warn!("{e}");
                }
                shared.copied.store(copied, Ordering::Release);
                debug!(
                    busy,
                    frames,
                    copied,
                    micros = started.elapsed().as_micros() as u64,
                    "checkpoint"
                );
            }
            Err(e) => warn!("checkpoint failed (the writer's own will catch up): {e}"),
        }
        shared.busy.store(false, Ordering::Release);
    }
    if let Err(e) = runtime.block_on(sqlx::Connection::close(conn)) {
        warn!("closing the checkpoint connection: {e}");
    }
}
