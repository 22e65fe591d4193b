//! Copies the WAL into the database ahead of the writer.
//!
//! SQLite checkpoints on the connection whose commit takes the WAL past its
//! threshold: left to itself the writer would copy ~40 MiB of frames into
//! the database between two batches, while streaming peers wait for their
//! answers. This thread runs a passive checkpoint (it never blocks the
//! writer or a reader) after every few MiB of articles committed, so by the
//! time the writer's own checkpoint comes due only the last frames are
//! left to copy, and the WAL still restarts from its beginning at the
//! writer's next transaction (a WAL that only grows makes every sync
//! slower).
//!
//! Measured on the 2-core test VM, one connection of pipelined
//! CHECK/TAKETHIS, means of interleaved runs: 57.6k -> 63.3k articles/s
//! (five each), 50.8k -> 53.0k (four each, on a slower day); lock-step
//! IHAVE and four connections unchanged. (Those runs used message-ids in
//! key order; see `store::tail` for what ids in no order cost.)

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;

use tracing::{debug, warn};

use crate::store::Store;

/// Article bytes committed between two checkpoints of the thread, when
/// articles stream in: ~1,900 articles of 2 KiB, ~1,000 WAL frames of 8 KiB
/// (one per two articles in batches), a fifth of the writer's own threshold
/// of 5,000 frames. Each checkpoint copies a page once however often it was
/// rewritten since the last one (the overview and history leaves, the
/// interior pages, the group row), and syncs the database file once.
/// Medians of interleaved runs against 1 MiB, one connection, CHECK and
/// TAKETHIS back to back: window 64 34.9k -> 38.2k/s, window 256 44.4k ->
/// 46.3k/s (300k articles); the checkpoint's CPU fell from ~4.4 to ~2.9 µs
/// per article. Window 20 and lock-step IHAVE: the same.
const NUDGE_BYTES: usize = 4 << 20;

/// Commits between two checkpoints of the thread, whatever their size: a
/// lock-step peer sends one article per commit, and each commit rewrites ~4
/// pages, so 4 MiB of its articles would be 8,000 frames, past the writer's
/// own threshold. 400 commits are ~1,600 frames. (Checkpointing every 10 ms
/// instead made some lock-step IHAVE runs a quarter slower: its syncs queue
/// behind the checkpoint's.)
const NUDGE_COMMITS: usize = 400;

/// The writer's side: `committed` after each commit.
pub(super) struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<thread::JoinHandle<()>>,
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
    ) -> std::io::Result<Checkpointer> {
        let (nudge, rx) = mpsc::sync_channel(1);
        let thread = thread::Builder::new()
            .name("tidings-checkpoint".into())
            .spawn(move || run(runtime, store, rx))?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
            since: 0,
            commits: 0,
        })
    }

    /// Counts a commit of `bytes` of articles, and tells the thread once
    /// they add up to `NUDGE_BYTES` or `NUDGE_COMMITS`. Never blocks: one
    /// nudge waiting is enough.
    pub(super) fn committed(&mut self, bytes: usize) {
        self.since += bytes;
        self.commits += 1;
        if self.since < NUDGE_BYTES && self.commits < NUDGE_COMMITS {
            return;
        }
        self.since = 0;
        self.commits = 0;
        if let Some(nudge) = &self.nudge
            && let Err(TrySendError::Disconnected(())) = nudge.try_send(())
        {
            debug!("checkpoint thread is gone");
        }
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

fn run(runtime: tokio::runtime::Handle, store: Store, rx: Receiver<()>) {
    let mut conn = match runtime.block_on(store.checkpoint_connection()) {
        Ok(c) => c,
        Err(e) => {
            // The writer's own checkpoints still keep the WAL bounded.
            warn!("no checkpoint connection, the writer checkpoints alone: {e}");
            return;
        }
    };
    while rx.recv().is_ok() {
        let done: Result<(i64, i64, i64), sqlx::Error> =
            runtime.block_on(sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut conn));
        match done {
            Ok((busy, frames, copied)) => debug!(busy, frames, copied, "checkpoint"),
            Err(e) => warn!("checkpoint failed (the writer's own will catch up): {e}"),
        }
    }
    if let Err(e) = runtime.block_on(sqlx::Connection::close(conn)) {
        warn!("closing the checkpoint connection: {e}");
    }
}
