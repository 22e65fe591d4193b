//! Ingest: every article (POST, IHAVE, TAKETHIS) goes through one writer
//! that owns all article writes (DESIGN.md "Ingest: one writer, group
//! commit"). Sessions `submit()` a checked article and wait for the answer,
//! which comes only after the transaction holding it has committed: an
//! acknowledged article is durable.
//!
//! The writer takes everything waiting on its bounded channel (up to the
//! configured number of articles or bytes) into one transaction, so batches
//! grow by themselves under load, and a full channel makes senders wait: the
//! back-pressure that keeps a flood from growing memory. While the last
//! commit is being synced (on the sync thread), the next transaction stays
//! open and takes whatever comes, and commits when that sync ends: its
//! articles could be acknowledged no sooner, and one commit per sync writes
//! fewer pages per article (each commit rewrites the last, partly filled
//! pages of the tables it touches). With no sync under way it commits at
//! once, unless the session that handed it the last articles has the next
//! of the same burst in hand (`HOLD_FOR_MORE`).
//!
//! It runs on a dedicated OS thread, because its SQLite calls (and the fsync
//! of each commit) block.

pub mod check;
mod checkpoint;
pub mod known;
pub mod placement;

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::article::Prepared;
use crate::config::{CancelPolicy, PinWriter, Synchronous};
use crate::store::bodies::{self, BodyConfig, Written};
use crate::store::overview::{self, Visibility};
use crate::store::raw::{Db, RawError, WalFrames};
use crate::store::tail::Sizing;
use crate::store::writer::{BatchWriter, MergeSlices, MergeStep, Origin, Outcome};
use crate::store::{Store, StoreError};
use checkpoint::Checkpointer;
use known::KnownIds;
use placement::{KeepAwake, Pinned, Placement};

#[derive(Debug, Clone, Error)]
pub enum IngestError {
    /// The transaction failed; nothing of the article is stored.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The writer has stopped (shutdown).
    #[error("server is shutting down")]
    Closed,
}

// The article is the request nearly every time, and boxing it would cost an
// allocation per article; the channel holds at most a batch of them.
#[allow(clippy::large_enum_variant)]
enum Request {
    Article(Submission),
    /// Remember a refused message-id; the reply comes after the commit.
    Reject(String, oneshot::Sender<()>),
    /// Several articles sent as one message, so they land in one batch.
    /// `more_soon`: the session holds the next article of the same burst
    /// already, whole, and hands it over within microseconds
    /// (`Ingest::submit_batch`).
    Articles {
        articles: Vec<Submission>,
        more_soon: bool,
    },
    /// Merge the history tail if nothing else is waiting (`tick_merges`).
    MergeTail,
    /// Write the overview queue (`store::overview`): a reader waits for
    /// it, or the writer may be idle (`tick_overview`).
    WriteOverview,
    /// The sync thread has answered what it had: an open transaction may
    /// commit (`run_writer`).
    Synced,
}

/// An article handed to the writer with the channel for its outcome.
pub struct Submission {
    pub article: Prepared,
    pub origin: Origin,
    pub reply: oneshot::Sender<Result<Outcome, IngestError>>,
}

impl Submission {
    fn size(&self) -> usize {
        self.article.head.len() + self.article.body.len()
    }
}

impl Request {
    fn size(&self) -> usize {
        match self {
            Request::Article(s) => s.size(),
            Request::Reject(id, _) => id.len(),
            Request::Articles { articles, .. } => articles.iter().map(Submission::size).sum(),
            Request::MergeTail | Request::WriteOverview | Request::Synced => 0,
        }
    }
}

/// What the writer takes into one transaction: articles, and refused
/// message-ids to remember, each with its reply.
#[derive(Default)]
struct Batch {
    articles: Vec<Submission>,
    rejects: Vec<(String, oneshot::Sender<()>)>,
}

impl Batch {
    fn len(&self) -> usize {
        self.articles.len() + self.rejects.len()
    }

    /// Adds what `r` brings; a merge request brings nothing (merging is
    /// for idle moments, and a batch is not one).
    fn take(&mut self, r: Request) {
        match r {
            Request::Article(s) => self.articles.push(s),
            Request::Articles { articles, .. } => self.articles.extend(articles),
            Request::Reject(id, reply) => self.rejects.push((id, reply)),
            Request::MergeTail | Request::WriteOverview | Request::Synced => {}
        }
    }
}

/// The handle sessions use to submit articles. Cheap to clone; the writer
/// stops when the last handle is dropped.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Request>,
    head: watch::Receiver<i64>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    known: Arc<KnownIds>,
    /// Sessions waiting in `submit` for their article's answer.
    waiting: Arc<AtomicUsize>,
    spin: Duration,
    cancels: Cancels,
    /// `storage.max_size_mib`, changed by a reload.
    max_size_mib: Arc<AtomicU64>,
}

/// The cancel policy the writer applies, changed by a reload.
#[derive(Clone)]
struct Cancels(Arc<AtomicU8>);

impl Cancels {
    const POLICIES: [CancelPolicy; 4] = [
        CancelPolicy::RequireAuth,
        CancelPolicy::Auth,
        CancelPolicy::All,
        CancelPolicy::None,
    ];

    fn new(policy: CancelPolicy) -> Cancels {
        let cancels = Cancels(Arc::default());
        cancels.set(policy);
        cancels
    }

    fn set(&self, policy: CancelPolicy) {
        let i = Self::POLICIES
            .iter()
            .position(|&p| p == policy)
            .unwrap_or(0);
        self.0.store(i as u8, Ordering::Relaxed);
    }

    fn get(&self) -> CancelPolicy {
        let i = usize::from(self.0.load(Ordering::Relaxed));
        Self::POLICIES
            .get(i)
            .copied()
            .unwrap_or(CancelPolicy::RequireAuth)
    }
}

/// A message-id being received on some connection (RFC 4644 §2.4: CHECK
/// on another connection answers 431 meanwhile). Released on drop.
pub struct InFlight {
    id: String,
    set: Arc<Mutex<HashSet<String>>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}

/// Counts a session waiting for the writer while it lives.
pub struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn enter(count: &Arc<AtomicUsize>) -> Waiting {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Joins the writer thread at shutdown.
pub struct WriterThread(thread::JoinHandle<()>);

impl WriterThread {
    /// Waits until the writer has committed what it had and stopped. Drop
    /// every `Ingest` handle first.
    pub async fn join(self) {
        let _ = tokio::task::spawn_blocking(move || self.0.join()).await;
    }
}

/// Limits of one writer transaction, and how long refused ids are kept.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub articles: usize,
    pub bytes: usize,
    /// Seconds a refused message-id stays in history.
    pub remember_secs: i64,
    /// How long the writer polls for work, and a lone submitter for its
    /// answer, before sleeping (`storage.spin_micros`, see `spin_for`).
    pub spin: Duration,
    /// The longest the history tail grows before it is merged while ingest
    /// goes on (`storage.history_tail_ids`, see `store::tail::merge_length`).
    pub merge_at: usize,
    /// Which cancels and supersedes are carried out (`cancels.process`) at
    /// start; `Ingest::set_cancel_policy` changes it.
    pub cancels: CancelPolicy,
    /// The most the database may grow to, in MiB; 0: no limit
    /// (`storage.max_size_mib`; `Ingest::set_max_size` changes it).
    pub max_size_mib: u64,
    /// The WAL file's size, given in advance and used round
    /// (`storage.wal_size_mib`, see `checkpoint::presize_wal`).
    pub wal_bytes: u64,
    /// Where the writer runs (`storage.pin_writer`, see `placement`).
    pub pin_writer: PinWriter,
}

impl Ingest {
    /// Opens the writer connection and starts the writer thread.
    pub async fn start(
        store: &Store,
        path_identity: &str,
        limits: BatchLimits,
    ) -> Result<(Ingest, WriterThread), StoreError> {
        let conn = store.writer_connection().await?;
        let (tx, rx) = mpsc::channel(limits.articles.max(1));
        let (head_tx, head) = watch::channel(0);
        let runtime = tokio::runtime::Handle::current();
        let identity = path_identity.to_owned();
        let (ready_tx, ready_rx) = oneshot::channel();
        let wal = (store.synchronous() == Synchronous::Full).then(|| store.wal_path());
        let known = Arc::new(KnownIds::default());
        let cancels = Cancels::new(limits.cancels);
        let max_size_mib = Arc::new(AtomicU64::new(limits.max_size_mib));
        let placement = match limits.pin_writer {
            PinWriter::Off => None,
            PinWriter::Auto => Placement::start(None, store.path()),
            PinWriter::Cpus(cpus) => Placement::start(Some(cpus), store.path()),
        };
        let writer = Writer {
            runtime,
            store: store.clone(),
            known: known.clone(),
            cancels: cancels.clone(),
            max_size_mib: max_size_mib.clone(),
            path_identity: identity,
            limits,
            wal,
            placement: placement.clone(),
        };
        let join = thread::Builder::new()
            .name("tidings-writer".into())
            .spawn({
                let wake = tx.downgrade();
                move || run_writer(writer, conn, rx, wake, head_tx, ready_tx)
            })
            .map_err(|source| StoreError::Io {
                path: "writer thread".into(),
                source,
            })?;
        match ready_rx.await {
            Ok(Ok(())) => {
                tokio::spawn(known.clone().rebuild(store.clone()));
                tokio::spawn(tick_merges(tx.downgrade(), store.tail().clone()));
                let visibility = store.visibility().clone();
                let writer = tx.downgrade();
                visibility.set_wake(Box::new(move || {
                    if let Some(tx) = writer.upgrade() {
                        // A full queue means a busy writer, which looks
                        // for waiting readers at its next commit.
                        let _ = tx.try_send(Request::WriteOverview);
                    }
                }));
                tokio::spawn(tick_overview(tx.downgrade(), visibility));
                if let (PinWriter::Auto, Some(placement)) = (limits.pin_writer, placement) {
                    tokio::spawn(recheck_placement(
                        tx.downgrade(),
                        placement,
                        store.path().to_owned(),
                    ));
                }
                Ok((
                    Ingest {
                        tx,
                        head,
                        in_flight: Arc::default(),
                        known,
                        waiting: Arc::default(),
                        spin: limits.spin,
                        cancels,
                        max_size_mib,
                    },
                    WriterThread(join),
                ))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Raw(crate::store::raw::RawError {
                code: 0,
                message: "writer thread died while starting".into(),
            })),
        }
    }

    /// Submits a checked article and waits until it is committed (or
    /// refused as a duplicate / for carrying no group we have).
    pub async fn submit(&self, article: Prepared, origin: Origin) -> Result<Outcome, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request::Article(Submission {
                article,
                origin,
                reply,
            }))
            .await
            .map_err(|_| IngestError::Closed)?;
        let _waiting = Waiting::enter(&self.waiting);
        self.answer(answer).await.map_err(|_| IngestError::Closed)?
    }

    /// Waits for the writer's answer. A submitter that is the only one
    /// waiting (a lock-step IHAVE peer, a lone poster) polls for it for up
    /// to `spin` first (`Spinner`), so that its worker thread is awake
    /// when the answer comes (see `spin_for`). When several wait, the
    /// writer answers them together and a wake-up costs each of them
    /// little, so they sleep.
    async fn answer<T>(
        &self,
        mut answer: oneshot::Receiver<T>,
    ) -> Result<T, oneshot::error::RecvError> {
        let started = Instant::now();
        let mut spinner = Spinner::new();
        while self.waiting.load(Ordering::Acquire) == 1 && started.elapsed() < self.spin {
            match answer.try_recv() {
                Ok(outcome) => return Ok(outcome),
                Err(oneshot::error::TryRecvError::Empty) => spinner.turn().await,
                Err(oneshot::error::TryRecvError::Closed) => break,
            }
        }
        answer.await
    }

    /// For a streaming session about to wait for answers the writer owes
    /// it: how long it may poll for them before it sleeps (`spin` when it
    /// is the only session waiting, as in `answer`, else nothing), and the
    /// guard that counts it as waiting meanwhile.
    pub fn poll_budget(&self) -> (Waiting, Duration) {
        let waiting = Waiting::enter(&self.waiting);
        let alone = self.waiting.load(Ordering::Acquire) == 1;
        (waiting, if alone { self.spin } else { Duration::ZERO })
    }

    /// Submits several articles at once without waiting; each answer comes
    /// on its submission's reply channel once committed. A streaming
    /// session gathers the TAKETHIS of one burst this way, so they share a
    /// transaction however the writer thread happens to wake.
    ///
    /// `more_soon`: the session has the next TAKETHIS of this burst in its
    /// buffer already, article and all, and hands it over next. The writer
    /// then holds its commit for it a little (`HOLD_FOR_MORE`) rather than
    /// commit the front of the burst alone and have the rest wait for a
    /// second commit and sync.
    pub async fn submit_batch(&self, batch: Vec<Submission>, more_soon: bool) {
        // On failure the replies are dropped, which callers see as closed.
        let request = Request::Articles {
            articles: batch,
            more_soon,
        };
        let _ = self.tx.send(request).await;
    }

    /// Remembers a refused message-id in history, so it is not taken (or
    /// asked for) again while remembered; returns once that is committed,
    /// so the next CHECK for it already answers 438.
    pub async fn reject(&self, msgid: &str) {
        let (reply, done) = oneshot::channel();
        if self
            .tx
            .send(Request::Reject(msgid.to_owned(), reply))
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Marks `msgid` as being received; `None` when another connection is
    /// receiving it already.
    pub fn receiving(&self, msgid: &str) -> Option<InFlight> {
        let mut set = self.in_flight.lock().ok()?;
        if !set.insert(msgid.to_owned()) {
            return None;
        }
        Some(InFlight {
            id: msgid.to_owned(),
            set: self.in_flight.clone(),
        })
    }

    /// Whether `msgid` is certainly unknown to history, so CHECK and IHAVE
    /// may want it without a look-up; `false` means "ask history".
    pub fn surely_new(&self, msgid: &str) -> bool {
        self.known.surely_new(msgid)
    }

    /// Whether `msgid` is being received on some connection right now.
    pub fn is_in_flight(&self, msgid: &str) -> bool {
        self.in_flight
            .lock()
            .map(|set| set.contains(msgid))
            .unwrap_or(false)
    }

    /// Sets which cancels and supersedes the writer carries out from its
    /// next batch on (a reload).
    pub fn set_cancel_policy(&self, policy: CancelPolicy) {
        self.cancels.set(policy);
    }

    /// Sets the most the database may grow to, in MiB (0: no limit), from
    /// the writer's next batch on (a reload).
    pub fn set_max_size(&self, mib: u64) {
        self.max_size_mib.store(mib, Ordering::Relaxed);
    }

    /// The id of the newest committed article; changes wake feeders.
    pub fn head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }
}

/// A committed batch waiting for its WAL sync before it is acknowledged.
struct Committed {
    replies: Vec<(oneshot::Sender<Result<Outcome, IngestError>>, Outcome)>,
    rejects: Vec<oneshot::Sender<()>>,
    last_id: i64,
    /// The body segments its articles' bodies went to (`store::bodies`).
    written: Vec<Written>,
}

/// A file synced (`fdatasync`) again and again through one handle, opened
/// at the first sync, and again after a failed one in case the file was
/// replaced.
struct FileSync {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
}

impl FileSync {
    fn new(path: std::path::PathBuf) -> FileSync {
        FileSync { path, file: None }
    }

    /// The file, opened at the first use (and again after a failed sync).
    fn open(&mut self) -> Result<&std::fs::File, String> {
        match self.file {
            Some(ref f) => Ok(f),
            None => match std::fs::File::open(&self.path) {
                Ok(f) => Ok(self.file.insert(f)),
                Err(e) => Err(format!("cannot open {}: {e}", self.path.display())),
            },
        }
    }

    /// Syncs; the reason on failure.
    fn sync(&mut self) -> Result<(), String> {
        let file = self.open()?;
        file.sync_data().map_err(|e| {
            self.file = None;
            format!("syncing {}: {e}", self.path.display())
        })
    }

    /// Writes the file's dirty pages to disk a step at a time, each step
    /// waited for, so that a sync that follows has little left to write:
    /// steps of `dense` bytes from `dense_from` to the end (where pages
    /// were appended and most are dirty), of `sparse` bytes before it
    /// (where a few pages here and there were rewritten). Returns the
    /// file's length. Failures are left to the sync that follows, which
    /// reports them.
    #[cfg(target_os = "linux")]
    fn write_back(&mut self, dense_from: u64, dense: u64, sparse: u64) -> u64 {
        use std::os::fd::AsRawFd;
        let Ok(file) = self.open() else {
            return dense_from;
        };
        let Ok(len) = file.metadata().map(|m| m.len()) else {
            return dense_from;
        };
        let fd = file.as_raw_fd();
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        let dense_from = dense_from.min(len);
        let mut from = 0;
        while from < len {
            let step = if from < dense_from {
                sparse.min(dense_from - from)
            } else {
                dense
            };
            // SAFETY: `fd` is open (`file` lives to the end of this
            // function), and sync_file_range only reads its arguments.
            let done = unsafe { libc::sync_file_range(fd, from as i64, step as i64, flags) };
            if done != 0 {
                break;
            }
            from += step;
        }
        len
    }

    #[cfg(not(target_os = "linux"))]
    fn write_back(&mut self, dense_from: u64, _dense: u64, _sparse: u64) -> u64 {
        dense_from
    }
}

/// Syncs the WAL file to disk: after it returns, every transaction
/// committed before the call is durable. Without a file (synchronous =
/// normal) commits are answered without a sync.
struct WalSync(Option<FileSync>);

impl WalSync {
    fn new(wal: Option<&std::path::PathBuf>) -> WalSync {
        WalSync(wal.cloned().map(FileSync::new))
    }

    /// Syncs the body segments the batches `done` wrote, then the WAL;
    /// the reason on failure.
    fn sync(&mut self, done: &[Committed]) -> Option<String> {
        let mut synced: Vec<i64> = Vec::new();
        for w in done.iter().flat_map(|c| &c.written) {
            if !synced.contains(&w.seg) {
                synced.push(w.seg);
                if let Err(e) = w.sync() {
                    return Some(e);
                }
            }
        }
        self.0.as_mut()?.sync().err()
    }
}

/// Answers synced batches (or fails them all) and moves the log head on,
/// and with a sync that ended well, `synced_through` (see
/// `store::bodies::BodyConfig`).
fn answer(
    done: Vec<Committed>,
    failure: Option<String>,
    head: &watch::Sender<i64>,
    synced_through: &AtomicI64,
) {
    if let Some(reason) = &failure {
        error!("{reason}: answering the batch as failed");
    }
    let newest = done.iter().map(|c| c.last_id).max().unwrap_or(0);
    let _ = synced_through.fetch_update(Ordering::AcqRel, Ordering::Acquire, |through| {
        match failure {
            // Past a failed sync nothing more is known to be on disk.
            Some(_) => Some(i64::MIN),
            None => (through != i64::MIN && newest > through).then_some(newest),
        }
    });
    let mut last = 0;
    for c in done {
        last = last.max(c.last_id);
        for (reply, outcome) in c.replies {
            let answer = match &failure {
                None => Ok(outcome),
                Some(reason) => Err(IngestError::Storage(reason.clone())),
            };
            let _ = reply.send(answer);
        }
        for reply in c.rejects {
            let _ = reply.send(());
        }
    }
    // The writer and the sync thread both answer; the head only moves on.
    head.send_if_modified(|h| {
        let moved = last > *h;
        *h = (*h).max(last);
        moved
    });
}

/// Makes committed batches durable, then answers them: one `fdatasync` of
/// the WAL covers every batch committed before it started, so while it runs
/// the writer goes on with the next batch (STORAGE-NOTES.md: overlapping
/// the next batch's inserts with the current fsync).
fn run_syncer(
    mut wal: WalSync,
    rx: std::sync::mpsc::Receiver<Committed>,
    head: watch::Sender<i64>,
    synced_through: Arc<AtomicI64>,
    queued: Arc<AtomicUsize>,
    writer: mpsc::WeakSender<Request>,
    mut pinned: Pinned,
) {
    while let Ok(first) = rx.recv() {
        pinned.follow();
        let mut done = vec![first];
        done.extend(rx.try_iter());
        let batches = done.len();
        let started = std::time::Instant::now();
        let failure = wal.sync(&done);
        debug!(
            batches = done.len(),
            micros = started.elapsed().as_micros() as u64,
            "synced"
        );
        answer(done, failure, &head, &synced_through);
        queued.fetch_sub(batches, Ordering::AcqRel);
        // A full channel means the writer has work and will look at
        // `queued` anyway.
        if let Some(tx) = writer.upgrade() {
            let _ = tx.try_send(Request::Synced);
        }
    }
}

/// What the writer thread works with, besides its connection and channels.
struct Writer {
    runtime: tokio::runtime::Handle,
    store: Store,
    known: Arc<KnownIds>,
    cancels: Cancels,
    max_size_mib: Arc<AtomicU64>,
    path_identity: String,
    limits: BatchLimits,
    /// The WAL file to sync before answering (synchronous = full).
    wal: Option<std::path::PathBuf>,
    /// Where the writer and the sync thread run, if they are pinned.
    placement: Option<Placement>,
}

impl Writer {
    /// Adds the message-ids of a committed batch to the filter, and has it
    /// grow when it is full.
    fn remember_ids(&self, batch: &Batch, cancelled: &[String]) {
        let ids = (batch.articles.iter())
            .map(|s| s.article.message_id.as_str())
            .chain(batch.rejects.iter().map(|(id, _)| id.as_str()))
            .chain(cancelled.iter().map(String::as_str));
        if self.known.add(ids) {
            self.runtime
                .spawn(self.known.clone().grow(self.store.clone()));
        }
    }
}

/// A task's turns of polling for an answer (`Ingest::answer`, a
/// streaming session's wait): between polls it pauses (`pause`), and lets
/// the runtime's other tasks run only every `RUNTIME_TURN`.
///
/// Yielding to the runtime on every turn made tokio wake its other worker
/// each time, to look for work (one wake-up every ~5 µs in `perf sched`):
/// both vCPUs stayed busy, and the writer thread, once woken, waited 45 µs
/// on average for one. Measured on the 2-core test VM, means of
/// interleaved runs, one connection: lock-step IHAVE 4.5k -> 5.9k
/// articles/s, CHECK then TAKETHIS at innfeed's window of 20 22.8k ->
/// 28.2k (four pairs each, every pair won); pipelined window 64 47.4k ->
/// 50.3k, 20 KiB 16.4k -> 17.0k, four connections the same (three pairs).
///
/// Each of those yields still cost: tokio puts the yielding task at the
/// back of its queue and wakes a parked worker to share it, a futex wake
/// and a vCPU woken on the other CPU. Every 50 µs, a lock-step IHAVE peer
/// paid about two per article (its wait is ~100 µs: the commit and the
/// sync). Every 200 µs it pays almost none: interleaved runs, lock-step
/// IHAVE, time per article less the writer's mean sync, from the same
/// run: 50 µs 110.6 / 116.7 / 104.1 µs, 200 µs 99.7 / 98.2 / 95.1 µs,
/// never 81.1 / 106.5 / 95.8 µs. A spinning task's budget counts nothing
/// while it polls (tokio's cooperative budget is spent only by progress),
/// so its other futures are still seen at every turn. Streaming (window
/// 20 CHECK then TAKETHIS, pipelined 64 and 256) the same within the
/// VM's noise.
pub struct Spinner {
    since: Instant,
}

/// How long a spinning task keeps its worker before it lets the
/// runtime's other tasks run: at most `spin` in all (400 µs by default),
/// and only a task that was alone in waiting for the writer spins.
const RUNTIME_TURN: Duration = Duration::from_micros(200);

impl Spinner {
    pub fn new() -> Spinner {
        Spinner {
            since: Instant::now(),
        }
    }

    /// One turn: a pause, and now and then the runtime's other tasks.
    pub async fn turn(&mut self) {
        if self.since.elapsed() < RUNTIME_TURN {
            pause();
        } else {
            tokio::task::yield_now().await;
            self.since = Instant::now();
        }
    }
}

/// Between two polls of a spin (`Spinner`, `spin_for`, `poll_until`): a
/// few spin-loop hints (`PAUSE`, ~1 µs in all), keeping the CPU.
///
/// Not `sched_yield`: a yield hands the CPU to any runnable thread, a
/// low-priority one too (a `nice -n 19` compression or backup job), and
/// that thread then keeps it for a whole scheduler slice (~1.5 ms with two
/// CPUs), since the spinner, still runnable, is never woken and so never
/// preempts it. Measured on the 2-core test VM with two such jobs running
/// (`bench stream --background-load 2`): lock-step IHAVE fell from ~4,200
/// to ~400 articles/s while the spinners yielded, and stays at ~4,200 with
/// pauses. Our own threads lose nothing: a thread woken for work (a
/// socket, the writer's channel) preempts the spinner. Interleaved runs,
/// one connection unless said, yields -> pauses (medians of each run):
/// lock-step IHAVE 4,167 / 3,802 / 3,654 / 4,035 -> 4,419 / 3,885 / 3,753 /
/// 3,975; pipelined window 256 70.5k -> 75.3k (five pairs, four won);
/// window 64 and four connections the same (three pairs each).
fn pause() {
    for _ in 0..16 {
        std::hint::spin_loop();
    }
}

impl Default for Spinner {
    fn default() -> Spinner {
        Spinner::new()
    }
}

/// The writer's next request. It polls for up to `spin` before it sleeps:
/// on a virtual machine a sleeping thread takes tens of microseconds to be
/// woken, which a lock-step IHAVE peer or a poster would pay on every
/// article, twice (the writer woken for the article, the session for its
/// answer). Measured on the 2-core test VM: lock-step IHAVE with a durable
/// 235 went from ~3,500 to ~5,100 articles/s with both sides polling.
/// Streaming is not slowed: there the writer seldom waits. The price is up
/// to `spin` of CPU after each batch when no more work comes.
fn spin_for(rx: &mut mpsc::Receiver<Request>, spin: Duration) -> Option<Request> {
    let started = Instant::now();
    while started.elapsed() < spin {
        match rx.try_recv() {
            Ok(request) => return Some(request),
            Err(TryRecvError::Empty) => pause(),
            Err(TryRecvError::Disconnected) => return None,
        }
    }
    rx.blocking_recv()
}

/// The longest the writer holds a commit, no sync being under way, for
/// the rest of a burst whose session has it in hand (`Request::Articles`).
/// Without it a peer keeping a small window in flight splits into two
/// groups that alternate, each paying its own commit and sync: innfeed's
/// default window of 20 went as 16 (the session's `MAX_STAGED`) then 4.
/// The session hands over at most `MAX_STAGED` articles it has read whole,
/// which takes tens of microseconds; a hold that runs out costs the
/// batch no more than this. Interleaved runs, one connection, 2 KiB:
/// TAKETHIS-only window 20 31.5k -> 39.8k/s (batches of 20 instead of 16
/// and 4); with a TAKETHIS behind CHECKs counted as in hand, window 64
/// pipelined 55.9k -> 59.9k/s; window 256, 20 KiB and four connections
/// the same.
const HOLD_FOR_MORE: Duration = Duration::from_micros(100);

/// The fewest articles (and rejected ids) of a burst that the writer
/// commits while a sync is under way, once the burst is all in hand (no
/// session has more of it, nothing is waiting): its sync then starts the
/// moment the one under way ends, instead of after a commit that began
/// then. A peer with a window of 64 in flight keeps two bursts of ~32 on
/// their way, and the one that arrived during a sync was committed only
/// after it ended (p50 ~120 µs from the sync's end to the commit's end),
/// on every cycle. Smaller bursts wait for the sync, as before, and join
/// what comes meanwhile: a commit writes ~7 WAL frames whatever its size,
/// and committing every burst at once (no minimum) made commits of 1
/// article common and was no faster.
/// Interleaved runs, one connection, 2 KiB: pipelined window 64 62.6k ->
/// 70.4k/s (10 pairs of 200,000 articles); window 256 94.7k -> 99.7k and
/// four connections 75.0k -> 81.0k (3 pairs); window 20, 20 KiB and
/// lock-step IHAVE the same.
const COMMIT_DURING_SYNC: usize = 16;

/// The writer's next request if one comes before `deadline`. It polls, as
/// `spin_for` does: the wait is shorter than a sleeping thread takes to be
/// woken on a virtual machine. `None` at the deadline, or when the channel
/// has closed (the writer's next wait finds that out).
fn poll_until(rx: &mut mpsc::Receiver<Request>, deadline: Instant) -> Option<Request> {
    loop {
        match rx.try_recv() {
            Ok(request) => return Some(request),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if Instant::now() >= deadline => return None,
            Err(TryRecvError::Empty) => pause(),
        }
    }
}

/// Looks again every `placement::RECHECK` at where the disk's
/// interrupts go (irqbalance may move them); the writer and the sync
/// thread follow. Ends with the writer.
async fn recheck_placement(
    writer: mpsc::WeakSender<Request>,
    placement: Placement,
    database: std::path::PathBuf,
) {
    let mut tick = tokio::time::interval(placement::RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if writer.upgrade().is_none() {
            return;
        }
        let (p, d) = (placement.clone(), database.clone());
        let _ = tokio::task::spawn_blocking(move || p.look(&d, false)).await;
    }
}

/// How often the writer is asked to merge the history tail
/// (`store::tail`) whatever its length; it does when it committed nothing
/// since the last time: a quiet server's history is whole within two
/// seconds or so, and its next start reads little back.
const MERGE_TICK: Duration = Duration::from_secs(1);

/// Asks the writer to merge the tail every `MERGE_TICK` while it is not
/// empty; ends with the writer (it holds only a weak handle).
async fn tick_merges(tx: mpsc::WeakSender<Request>, tail: Arc<crate::store::tail::Tail>) {
    let mut tick = tokio::time::interval(MERGE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(tx) = tx.upgrade() else { return };
        if !tail.is_empty() {
            // A full queue means a busy writer: the next tick will do.
            let _ = tx.try_send(Request::MergeTail);
        }
    }
}

/// Asks the writer to write its overview queue `overview::TICK` after it
/// comes to hold one, and every tick while it does; it does when it
/// committed nothing since the tick before, or the queue is old. Sleeps
/// while there is no queue; ends with the writer.
async fn tick_overview(tx: mpsc::WeakSender<Request>, visibility: Arc<Visibility>) {
    loop {
        visibility.until_queued().await;
        tokio::time::sleep(overview::TICK).await;
        let Some(tx) = tx.upgrade() else { return };
        if visibility.queued() {
            // A full queue means a busy writer: the next tick will do.
            let _ = tx.try_send(Request::WriteOverview);
        }
    }
}

/// Writes the overview queue outside a batch (`BatchWriter::write_overview`)
/// and logs it.
fn write_overview(writer: &mut BatchWriter<'_>) {
    let started = Instant::now();
    match writer.write_overview() {
        Ok(0) => {}
        Ok(rows) => debug!(
            rows,
            micros = started.elapsed().as_micros() as u64,
            "overview queue written"
        ),
        Err(e) if e.is_full() => debug!("writing the overview queue: {e}"),
        Err(e) => error!("writing the overview queue: {e}"),
    }
}

/// Pages (`store::PAGE_BYTES`) in a MiB.
const PAGES_PER_MIB: u64 = (1 << 20) / crate::store::PAGE_BYTES as u64;

/// SQLite's own largest `max_page_count`: no limit but the disk's.
const NO_PAGE_LIMIT: u64 = 4_294_967_294;

/// Sets `max_page_count` on the writer's connection: a transaction that
/// would grow the database past it fails with SQLITE_FULL, rolled back
/// whole, and its articles are answered as not stored.
fn limit_size(db: &Db, mib: u64) {
    let pages = match mib {
        0 => NO_PAGE_LIMIT,
        mib => mib.saturating_mul(PAGES_PER_MIB).min(NO_PAGE_LIMIT),
    };
    match db.exec(&format!("PRAGMA max_page_count = {pages}")) {
        Ok(()) if mib > 0 => info!("the database may grow to {mib} MiB"),
        Ok(()) => {}
        Err(e) => error!("cannot limit the database to {mib} MiB: {e}"),
    }
}

/// Logs a step of merging the history tail (`BatchWriter::merge_tail`,
/// `merge_idle`); whether there is more to do.
fn merge_step(step: Result<MergeStep, RawError>) -> bool {
    match step {
        Ok(step) => {
            if step.written > 0 {
                debug!(ids = step.written, more = step.more, "history merged");
            }
            step.more
        }
        // The batches' warning says so already; the merge waits for room.
        Err(e) if e.is_full() => {
            debug!("merging the history tail into history: {e}");
            false
        }
        Err(e) => {
            error!("merging the history tail into history: {e}");
            false
        }
    }
}

/// The most articles a transaction may hold to be synced on the writer
/// itself (when nothing else waits). A larger one comes from a stream, and
/// the writer is better off free to gather the next transaction meanwhile:
/// with one commit per sync, syncing every idle-time commit here made the
/// writer sit through ~40% of the syncs. Interleaved runs on the 2-core VM
/// (unbounded -> 4), one connection, pipelined window 64: 7 of 8 pairs
/// faster, by 3-12% in the steadier half (32.2k -> 33.0k/s median of all);
/// window 256 38.7k/40.9k -> 40.3k/43.5k; CHECK-first windows 20 and 64,
/// 4 connections and IHAVE the same within noise.
const INLINE_SYNC_MAX: usize = 4;

/// How the writer gets committed transactions synced and answered.
struct Syncing<'a> {
    /// For syncing here, when nothing else waits (see `Pending::finish`).
    own_sync: WalSync,
    /// Transactions handed to the sync thread and not yet answered.
    queued: Arc<AtomicUsize>,
    synced_tx: std::sync::mpsc::Sender<Committed>,
    head: watch::Sender<i64>,
    /// See `store::bodies::BodyConfig`.
    synced_through: Arc<AtomicI64>,
    checkpointer: &'a mut Checkpointer,
    /// The writer's connection, for its own checkpoints.
    db: &'a Db,
    /// The WAL's length after the last commit.
    wal_frames: &'a WalFrames,
    /// The writer thread's pinning, and what keeps its CPU awake.
    place: WriterPlace,
}

/// The writer thread's pinning (`placement`), and the thread that keeps
/// its CPU from going idle while it waits in a sync of its own
/// (`KeepAwake`: when it is pinned to one CPU and `spin` is not 0, for an
/// operator who lets the server poll rather than sleep).
struct WriterPlace {
    pinned: Pinned,
    awake: Option<KeepAwake>,
    keep_awake: bool,
}

impl WriterPlace {
    fn new(placement: Option<Placement>, keep_awake: bool) -> WriterPlace {
        let mut place = WriterPlace {
            pinned: Pinned::new(placement),
            awake: None,
            keep_awake,
        };
        place.follow();
        place
    }

    /// Pins the writer where its placement now wants it, and has its CPU
    /// kept awake there.
    fn follow(&mut self) {
        self.pinned.follow();
        let want = self.pinned.single().filter(|_| self.keep_awake);
        if self.awake.as_ref().map(KeepAwake::cpu) == want {
            return;
        }
        self.awake = None;
        if let Some(cpu) = want {
            match KeepAwake::start(cpu) {
                Ok(awake) => self.awake = Some(awake),
                Err(e) => {
                    warn!("nothing keeps the writer's CPU awake during its syncs: {e}");
                    self.keep_awake = false;
                }
            }
        }
    }

    fn sync<T>(&self, sync: impl FnOnce() -> T) -> T {
        match &self.awake {
            Some(awake) => awake.during(sync),
            None => sync(),
        }
    }
}

/// The writer's open transaction: the batches written into it, with their
/// outcomes, until it commits.
struct Pending {
    batch: Batch,
    outcomes: Vec<Outcome>,
    bytes: usize,
    started: Instant,
    /// The size limit in force on the connection (`u64::MAX`: not set).
    max_size: u64,
    /// The last request taken said more of its burst comes at once.
    more_soon: bool,
    /// Since when the commit has been held for it.
    held: Option<Instant>,
}

impl Default for Pending {
    fn default() -> Pending {
        Pending {
            batch: Batch::default(),
            outcomes: Vec::new(),
            bytes: 0,
            started: Instant::now(),
            max_size: u64::MAX,
            more_soon: false,
            held: None,
        }
    }
}

impl Pending {
    /// Adds a request to the batch.
    fn take(&mut self, r: Request) {
        self.bytes += r.size();
        self.more_soon = matches!(
            r,
            Request::Articles {
                more_soon: true,
                ..
            }
        );
        self.batch.take(r);
    }

    /// Commits the open transaction and has it synced and answered.
    fn finish(
        &mut self,
        writer: &mut BatchWriter<'_>,
        rx: &mpsc::Receiver<Request>,
        s: &mut Syncing<'_>,
        state: &Writer,
        tail: &crate::store::tail::Tail,
    ) {
        self.more_soon = false;
        self.held = None;
        writer.size_merges(Sizing::new(state.known.held(), state.limits.merge_at));
        if let Err(e) = writer.commit() {
            self.fail(e);
            return;
        }
        state.remember_ids(&self.batch, writer.remembered());
        debug!(
            articles = self.outcomes.len(),
            bytes = self.bytes,
            merged = writer.last_merge().written,
            tail = tail.len(),
            open_micros = self.started.elapsed().as_micros() as u64,
            wal_frames = s.wal_frames.get(),
            "batch committed"
        );
        let replies = self.batch.articles.drain(..).map(|s| s.reply);
        let committed = Committed {
            replies: replies.zip(self.outcomes.drain(..)).collect(),
            rejects: self.batch.rejects.drain(..).map(|(_, r)| r).collect(),
            last_id: writer.last_id(),
            written: writer.take_written(),
        };
        let checkpoint_here = s.checkpointer.committed(self.bytes, s.wal_frames.get());
        self.bytes = 0;
        // A small transaction, with nothing waiting to be written and
        // nothing before it waiting for a sync, is synced here: a hand-off
        // to the sync thread costs a wake-up, tens of microseconds on a VM,
        // on every article of a lock-step peer or a lone poster. Otherwise
        // the sync thread syncs it while the writer gathers the next
        // transaction (see `INLINE_SYNC_MAX`).
        if rx.is_empty()
            && s.queued.load(Ordering::Acquire) == 0
            && committed.replies.len() <= INLINE_SYNC_MAX
        {
            let done = vec![committed];
            let started = Instant::now();
            let failure = s.place.sync(|| s.own_sync.sync(&done));
            debug!(
                micros = started.elapsed().as_micros() as u64,
                "synced by the writer"
            );
            answer(done, failure, &s.head, &s.synced_through);
        } else {
            s.queued.fetch_add(1, Ordering::AcqRel);
            let _ = s.synced_tx.send(committed);
        }
        if checkpoint_here {
            s.checkpointer.checkpoint_here(s.db);
        }
    }

    /// Answers every article of the transaction as not stored (it was
    /// rolled back).
    fn fail(&mut self, e: RawError) {
        let articles = self.batch.articles.len();
        let why = if e.is_full() {
            // Refused, not lost: posters are told 441, peers 436 or 400,
            // and they offer the articles again later.
            warn!(
                articles,
                "the database is full ({}): articles are refused until expiry \
                 or `tidings article remove` frees space, or storage.max_size_mib \
                 is raised",
                match self.max_size {
                    0 | u64::MAX => "the disk is full".to_owned(),
                    mib => format!("storage.max_size_mib = {mib}, or the disk"),
                }
            );
            "the database is full".to_owned()
        } else {
            error!(articles, "writer transaction failed, batch not stored: {e}");
            e.message
        };
        for s in self.batch.articles.drain(..) {
            let _ = s.reply.send(Err(IngestError::Storage(why.clone())));
        }
        self.batch.rejects.clear();
        self.outcomes.clear();
        self.bytes = 0;
    }
}

fn run_writer(
    writer_state: Writer,
    mut conn: sqlx::SqliteConnection,
    mut rx: mpsc::Receiver<Request>,
    wake: mpsc::WeakSender<Request>,
    head: watch::Sender<i64>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let runtime = &writer_state.runtime;
    let limits = writer_state.limits;
    let (synced_tx, synced_rx) = std::sync::mpsc::channel::<Committed>();
    // The writer syncs a batch itself when nothing else is waiting and no
    // sync is under way (see below): a lock-step IHAVE or POST is answered
    // without a hand-off.
    let own_sync = WalSync::new(writer_state.wal.as_ref());
    // Batches handed to the sync thread and not yet answered.
    let queued = Arc::new(AtomicUsize::new(0));
    // Set once the writer has checked the bodies the last one left.
    let synced_through = Arc::new(AtomicI64::new(0));
    let helpers = {
        let head = head.clone();
        let queued = queued.clone();
        let synced_through = synced_through.clone();
        let wal = WalSync::new(writer_state.wal.as_ref());
        let placement = writer_state.placement.clone();
        let thread_failed = |what: &str| {
            let path = what.into();
            move |source| StoreError::Io { path, source }
        };
        thread::Builder::new()
            .name("tidings-sync".into())
            .spawn(move || {
                let pinned = Pinned::new(placement);
                run_syncer(wal, synced_rx, head, synced_through, queued, wake, pinned)
            })
            .map_err(thread_failed("sync thread"))
            .and_then(|syncer| {
                Checkpointer::start(
                    runtime.clone(),
                    writer_state.store.clone(),
                    checkpoint::restart_frames(limits.wal_bytes),
                )
                .map(|checkpointer| (syncer, checkpointer))
                .map_err(thread_failed("checkpoint thread"))
            })
    };
    let (syncer, mut checkpointer) = match helpers {
        Ok(h) => h,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    {
        let mut locked = match runtime.block_on(conn.lock_handle()) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return;
            }
        };
        // SAFETY: the handle comes from the lock held in `locked`, which
        // outlives `db` and every statement (all dropped at the end of this
        // block, statements first).
        let db = unsafe { Db::new(locked.as_raw_handle()) };
        let wal_frames = WalFrames::default();
        let _wal_watch = db.watch_wal(&wal_frames);
        let tail = writer_state.store.tail().clone();
        let visibility = writer_state.store.visibility().clone();
        let store = &writer_state.store;
        // Bodies a writer that stopped short left unwritten: their
        // articles go (they were never acknowledged).
        match bodies::verify(&db, store.bodies()) {
            Ok(v) if v.removed > 0 => warn!(
                checked = v.checked,
                removed = v.removed,
                "bodies checked at start"
            ),
            Ok(v) => debug!(checked = v.checked, "bodies checked at start"),
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return;
            }
        }
        let (body_min_bytes, body_segment_bytes) = store.body_sizes();
        let body_config = match &writer_state.wal {
            Some(wal) if body_min_bytes > 0 => Some(BodyConfig {
                dir: store.bodies().dir().to_owned(),
                min_bytes: body_min_bytes,
                segment_bytes: body_segment_bytes,
                wal: wal.clone(),
                synced_through: synced_through.clone(),
            }),
            _ => None,
        };
        let mut writer = match BatchWriter::new(
            &db,
            &writer_state.path_identity,
            tail.clone(),
            visibility.clone(),
            Sizing::new(None, limits.merge_at),
            store.bodies(),
            body_config,
        ) {
            Ok(w) => w,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return;
            }
        };
        // What a writer that stopped without writing its queue left.
        write_overview(&mut writer);
        checkpoint::presize_wal(&db, &writer_state.store.wal_path(), limits.wal_bytes);
        head.send_replace(writer.last_id());
        // `verify` checked every body up to here.
        synced_through.store(writer.last_id(), Ordering::Release);
        let _ = ready.send(Ok(()));
        info!("writer started at article {}", writer.last_id());

        let mut pending = Pending::default();
        // Whether a batch was committed since the last `MergeTail` tick,
        // and since the last `WriteOverview`.
        let mut committed_since_tick = false;
        let mut committed_since_overview = false;
        let mut syncing = Syncing {
            own_sync,
            queued: queued.clone(),
            synced_tx,
            head: head.clone(),
            synced_through,
            checkpointer: &mut checkpointer,
            db: &db,
            wal_frames: &wal_frames,
            place: WriterPlace::new(writer_state.placement.clone(), !limits.spin.is_zero()),
        };
        loop {
            syncing.place.follow();
            // Read once: the sync thread may end its sync meanwhile, and
            // the branches below must agree on whether one is under way.
            let no_sync = syncing.queued.load(Ordering::Acquire) == 0;
            let request = if !writer.is_open() {
                match spin_for(&mut rx, limits.spin) {
                    Some(r) => r,
                    None => break,
                }
            } else if pending.batch.len() >= limits.articles
                || pending.bytes >= limits.bytes
                || (!pending.more_soon
                    && (no_sync || (rx.is_empty() && pending.batch.len() >= COMMIT_DURING_SYNC)))
            {
                // No sync under way, or a burst in hand whole and large
                // enough (`COMMIT_DURING_SYNC`), or the transaction is
                // full: commit.
                pending.finish(&mut writer, &rx, &mut syncing, &writer_state, &tail);
                committed_since_tick = true;
                committed_since_overview = true;
                // Nothing waiting: time to merge a little of the tail.
                while rx.is_empty() && merge_step(writer.merge_idle()) {}
                continue;
            } else if no_sync {
                // No sync under way, but the session that handed over the
                // last articles has the next of its burst in hand: holding
                // the commit for it saves the rest of the burst a second
                // commit and sync (`HOLD_FOR_MORE`).
                let since = *pending.held.get_or_insert_with(Instant::now);
                match poll_until(&mut rx, since + HOLD_FOR_MORE) {
                    Some(r) => r,
                    None => {
                        pending.more_soon = false;
                        continue;
                    }
                }
            } else {
                // A sync is under way, and this transaction's articles
                // would wait for the next one whenever they were
                // committed: what comes meanwhile joins it, and it is
                // committed when the sync ends (the sync thread sends
                // `Synced`), or once it is a whole burst of
                // `COMMIT_DURING_SYNC`. One commit per sync, as large as
                // the flow, or one per burst ready for the next sync.
                match rx.blocking_recv() {
                    Some(r) => r,
                    None => break,
                }
            };
            let first = match request {
                Request::MergeTail if !writer.is_open() => {
                    // A quiet second: merge whatever the tail holds, in
                    // short slices, as long as nothing else comes. While
                    // articles flow the tail waits for its length
                    // (`merge_idle`): merging it every second would write
                    // history's leaves as often as a short tail does.
                    if !std::mem::take(&mut committed_since_tick) {
                        while rx.is_empty() && merge_step(writer.merge_tail(MergeSlices::Short)) {}
                    }
                    continue;
                }
                Request::WriteOverview if !writer.is_open() => {
                    // A reader waits, or nothing came since the last tick,
                    // or the queue is old: written now. Else the writer is
                    // busy, and a commit writes it once it is long or old.
                    let wanted = visibility.take_wanted();
                    let quiet = !std::mem::take(&mut committed_since_overview);
                    if writer.overview_queued() > 0 && (wanted || quiet || writer.overview_old()) {
                        write_overview(&mut writer);
                    }
                    continue;
                }
                Request::MergeTail | Request::WriteOverview | Request::Synced => continue,
                first => first,
            };
            let (from_articles, from_rejects) =
                (pending.batch.articles.len(), pending.batch.rejects.len());
            pending.take(first);
            while pending.batch.len() < limits.articles && pending.bytes < limits.bytes {
                match rx.try_recv() {
                    Ok(r) => pending.take(r),
                    Err(_) => break,
                }
            }
            if !writer.is_open() {
                let max_size = writer_state.max_size_mib.load(Ordering::Relaxed);
                if max_size != pending.max_size {
                    pending.max_size = max_size;
                    limit_size(&db, max_size);
                    writer.set_size_limited(max_size > 0);
                }
                pending.started = Instant::now();
                if let Err(e) = writer.begin() {
                    pending.fail(e);
                    continue;
                }
            }
            let articles: Vec<(&Prepared, Origin)> = (pending.batch.articles[from_articles..]
                .iter())
            .map(|s| (&s.article, s.origin))
            .collect();
            let rejected: Vec<&str> = (pending.batch.rejects[from_rejects..].iter())
                .map(|(id, _)| id.as_str())
                .collect();
            let now = chrono::Utc::now().timestamp();
            let surely_new = |msgid: &str| writer_state.known.surely_new(msgid);
            let added = writer.add(
                &articles,
                &rejected,
                now,
                now + limits.remember_secs,
                &surely_new,
                writer_state.cancels.get(),
            );
            drop(articles);
            drop(rejected);
            match added {
                Ok(outcomes) => pending.outcomes.extend(outcomes),
                Err(e) => {
                    writer.rollback();
                    pending.fail(e);
                }
            }
        }
        if writer.is_open() {
            pending.finish(&mut writer, &rx, &mut syncing, &writer_state, &tail);
        }
        // A clean stop leaves the overview and history whole.
        write_overview(&mut writer);
        while merge_step(writer.merge_tail(MergeSlices::Long)) {}
        tail.stop();
        visibility.stopped();
        info!("writer stopped at article {}", writer.last_id());
    }
    // Every committed batch is answered before the connection closes (the
    // sync thread's channel closed with `syncing`).
    let _ = syncer.join();
    drop(checkpointer);
    if let Err(e) = runtime.block_on(sqlx::Connection::close(conn)) {
        error!("closing the writer connection: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::FileSync;

    #[test]
    fn writes_a_file_back_in_steps_and_leaves_it_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let bytes: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write");
        let mut file = FileSync::new(path.clone());
        // Sparse steps before 1 MiB, dense ones after, the last one short.
        assert_eq!(
            file.write_back(1 << 20, 256 << 10, 300 << 10),
            bytes.len() as u64
        );
        // Past the end: the end.
        assert_eq!(
            file.write_back(8 << 20, 256 << 10, 300 << 10),
            bytes.len() as u64
        );
        assert_eq!(file.sync(), Ok(()));
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
    }

    #[test]
    fn leaves_a_missing_file_to_the_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut file = FileSync::new(dir.path().join("gone"));
        assert_eq!(file.write_back(4096, 256 << 10, 8 << 20), 4096);
        assert!(file.sync().is_err());
    }
}
