//! Flooding: a feeder task per configured peer with an address, each with a
//! durable cursor over the article log (DESIGN.md "Flooding: the article
//! log is the queue"). Feeders are woken by the writer's head-of-log watch
//! and read the log themselves; nothing is queued in memory.

pub mod filter;
pub mod outbound;

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::PeerConfig;
use crate::store::{Store, StoreError};

struct Running {
    config: PeerConfig,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// How long a feeder told to stop may take to save its round and say
/// QUIT before it is cut off (`ended`). A feeder stops at once between
/// rounds and in the middle of one; only a database or a connection that
/// hangs outside a round holds it longer.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The running feeders, by peer name.
pub struct Feeds {
    store: Store,
    head: watch::Receiver<i64>,
    running: HashMap<String, Running>,
    /// Feeders of peers taken out of the configuration, while they stop.
    leaving: Vec<JoinHandle<()>>,
}

impl Feeds {
    /// Starts a feeder for every peer that has an address. A peer seen for
    /// the first time gets a cursor at the head of the log now, before any
    /// client can post: it is fed everything from this start on.
    pub async fn start(
        store: Store,
        head: watch::Receiver<i64>,
        peers: &[PeerConfig],
    ) -> Result<Feeds, StoreError> {
        for p in peers.iter().filter(|p| p.address.is_some()) {
            store.peer_state(&p.name.0).await?;
        }
        // No feeder runs yet: a connection recorded by a server that was
        // killed (or crashed) is long gone.
        store.clear_peer_connections().await?;
        let mut feeds = Feeds {
            store,
            head,
            running: HashMap::new(),
            leaving: Vec::new(),
        };
        feeds.reconfigure(peers);
        Ok(feeds)
    }

    /// Applies a new peer list: feeders of removed or changed peers stop,
    /// new and changed ones start. Cursors live in the database, so a
    /// restarted feeder carries on where the old one stopped; it starts
    /// once the old one has ended, so a peer is never fed twice at once.
    pub fn reconfigure(&mut self, peers: &[PeerConfig]) {
        let wanted: HashMap<&str, &PeerConfig> = peers
            .iter()
            .filter(|p| p.address.is_some())
            .map(|p| (p.name.0.as_str(), p))
            .collect();
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| wanted.get(name.as_str()) != Some(&&r.config))
            .map(|(name, _)| name.clone())
            .collect();
        let mut stopping = HashMap::new();
        for name in stale {
            if let Some(r) = self.running.remove(&name) {
                info!(peer = %name, "stopping feeder");
                let _ = r.stop.send(true);
                stopping.insert(name, r.task);
            }
        }
        self.leaving.retain(|task| !task.is_finished());
        for (name, peer) in wanted {
            if self.running.contains_key(name) {
                continue;
            }
            info!(peer = %name, address = ?peer.address, "starting feeder");
            let (stop, stop_rx) = watch::channel(false);
            let before = stopping.remove(name);
            let feeder =
                outbound::run(peer.clone(), self.store.clone(), self.head.clone(), stop_rx);
            let store = self.store.clone();
            let name_owned = name.to_owned();
            let task = tokio::spawn(async move {
                if let Some(before) = before {
                    ended(before, &store, &name_owned).await;
                }
                feeder.await;
            });
            self.running.insert(
                name.to_owned(),
                Running {
                    config: peer.clone(),
                    stop,
                    task,
                },
            );
        }
        for (name, task) in stopping {
            let store = self.store.clone();
            self.leaving.push(tokio::spawn(
                async move { ended(task, &store, &name).await },
            ));
        }
    }

    /// Stops every feeder and waits for them (each for `STOP_GRACE` at
    /// most).
    pub async fn stop(self) {
        for r in self.running.values() {
            let _ = r.stop.send(true);
        }
        // Together: a peer that hangs (outside a round, say while it is
        // connecting) holds the shutdown STOP_GRACE once, however many.
        let store = &self.store;
        let feeders = (self.running.into_iter()).map(|(name, r)| async move {
            ended(r.task, store, &name).await;
        });
        futures_util::future::join_all(feeders).await;
        for task in self.leaving {
            let _ = task.await;
        }
    }
}

/// Waits for a feeder told to stop; past `STOP_GRACE`, cuts it off and
/// records it as no longer connected (what it would have done itself).
/// Nothing is lost that way: its cursor moves only past answered articles,
/// so the next feeder offers the rest again.
async fn ended(mut task: JoinHandle<()>, store: &Store, name: &str) {
    if tokio::time::timeout(STOP_GRACE, &mut task).await.is_ok() {
        return;
    }
    warn!(peer = %name, "feeder did not stop within {STOP_GRACE:?}: cut off");
    task.abort();
    let _ = task.await;
    if let Err(e) = store.set_peer_connected(name, None).await {
        warn!(peer = %name, "recording the feed as ended: {e}");
    }
}
