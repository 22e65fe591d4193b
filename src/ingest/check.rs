//! History look-ups for CHECK and IHAVE, batched: every id asked for while
//! a look-up runs goes into the next one, a single statement (a peer
//! pipelines dozens of CHECKs; one query each would make the session wait
//! on the read pool for each in turn).

use std::collections::HashSet;

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::store::Store;

/// The most ids in one look-up.
const BATCH: usize = 500;

struct Ask {
    msgid: String,
    reply: oneshot::Sender<Option<bool>>,
}

/// Asks whether message-ids are known to history.
#[derive(Clone)]
pub struct Seen {
    tx: mpsc::Sender<Ask>,
}

impl Seen {
    /// Starts the look-up task; it ends when the last handle is dropped.
    pub fn start(store: Store) -> Seen {
        let (tx, rx) = mpsc::channel(4 * BATCH);
        tokio::spawn(run(store, rx));
        Seen { tx }
    }

    /// Whether history knows `msgid`; the answer arrives once the batch it
    /// joined has been looked up. `None` inside means the look-up failed.
    pub async fn ask(&self, msgid: &str) -> oneshot::Receiver<Option<bool>> {
        let (reply, answer) = oneshot::channel();
        let ask = Ask {
            msgid: msgid.to_owned(),
            reply,
        };
        // If the task is gone the receiver reports closed, which callers
        // treat like a failed look-up.
        let _ = self.tx.send(ask).await;
        answer
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Ask>) {
    let mut batch: Vec<Ask> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let ids: Vec<String> = batch.iter().map(|a| a.msgid.clone()).collect();
        let started = std::time::Instant::now();
        let known: Option<HashSet<String>> = match store.seen_many(&ids).await {
            Ok(k) => Some(k),
            Err(e) => {
                warn!("history look-up failed: {e}");
                None
            }
        };
        tracing::debug!(
            ids = ids.len(),
            micros = started.elapsed().as_micros() as u64,
            "history looked up"
        );
        for a in batch.drain(..) {
            let answer = known.as_ref().map(|k| k.contains(&a.msgid));
            let _ = a.reply.send(answer);
        }
    }
}
