//! Ingest: every article (POST, IHAVE, TAKETHIS) goes through one writer
//! that owns all article writes (DESIGN.md "Ingest: one writer, group
//! commit"). Sessions `submit()` a checked article and wait for the answer,
//! which comes only after the transaction holding it has committed: an
//! acknowledged article is durable.
//!
//! The writer takes everything waiting on its bounded channel (up to the
//! configured number of articles or bytes) into one transaction, so batches
//! grow by themselves under load, and a full channel makes senders wait: the
//! back-pressure that keeps a flood from growing memory.
//!
//! It runs on a dedicated OS thread, because its SQLite calls (and the fsync
//! of each commit) block.

use std::thread;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info};

use crate::article::Prepared;
use crate::store::raw::Db;
use crate::store::writer::{BatchWriter, Origin, Outcome};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Error)]
pub enum IngestError {
    /// The transaction failed; nothing of the article is stored.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The writer has stopped (shutdown).
    #[error("server is shutting down")]
    Closed,
}

struct Request {
    article: Prepared,
    origin: Origin,
    reply: oneshot::Sender<Result<Outcome, IngestError>>,
}

/// The handle sessions use to submit articles. Cheap to clone; the writer
/// stops when the last handle is dropped.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Request>,
    head: watch::Receiver<i64>,
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

/// Limits of one writer transaction.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub articles: usize,
    pub bytes: usize,
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
        let join = thread::Builder::new()
            .name("tidings-writer".into())
            .spawn(move || run_writer(runtime, conn, identity, limits, rx, head_tx, ready_tx))
            .map_err(|source| StoreError::Io {
                path: "writer thread".into(),
                source,
            })?;
        match ready_rx.await {
            Ok(Ok(())) => Ok((Ingest { tx, head }, WriterThread(join))),
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
            .send(Request {
                article,
                origin,
                reply,
            })
            .await
            .map_err(|_| IngestError::Closed)?;
        answer.await.map_err(|_| IngestError::Closed)?
    }

    /// The id of the newest committed article; changes wake feeders.
    pub fn head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }
}

fn run_writer(
    runtime: tokio::runtime::Handle,
    mut conn: sqlx::SqliteConnection,
    path_identity: String,
    limits: BatchLimits,
    mut rx: mpsc::Receiver<Request>,
    head: watch::Sender<i64>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
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
        let mut writer = match BatchWriter::new(&db, &path_identity) {
            Ok(w) => w,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return;
            }
        };
        head.send_replace(writer.last_id());
        let _ = ready.send(Ok(()));
        info!("writer started at article {}", writer.last_id());

        let mut batch: Vec<Request> = Vec::with_capacity(limits.articles);
        while let Some(first) = rx.blocking_recv() {
            let mut bytes = first.article.head.len() + first.article.body.len();
            batch.push(first);
            while batch.len() < limits.articles && bytes < limits.bytes {
                match rx.try_recv() {
                    Ok(r) => {
                        bytes += r.article.head.len() + r.article.body.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            let articles: Vec<(&Prepared, Origin)> =
                batch.iter().map(|r| (&r.article, r.origin)).collect();
            let now = chrono::Utc::now().timestamp();
            let result = writer.write(&articles, now);
            drop(articles);
            match result {
                Ok(outcomes) => {
                    debug!(articles = batch.len(), bytes, "batch committed");
                    head.send_replace(writer.last_id());
                    for (request, outcome) in batch.drain(..).zip(outcomes) {
                        let _ = request.reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    error!(
                        "writer transaction failed, {} articles not stored: {e}",
                        batch.len()
                    );
                    for request in batch.drain(..) {
                        let _ = request
                            .reply
                            .send(Err(IngestError::Storage(e.message.clone())));
                    }
                }
            }
        }
        info!("writer stopped at article {}", writer.last_id());
    }
    if let Err(e) = runtime.block_on(sqlx::Connection::close(conn)) {
        error!("closing the writer connection: {e}");
    }
}
