//! Flooding: a feeder task per configured peer with an address, each with a
//! durable cursor over the article log (DESIGN.md "Flooding: the article
//! log is the queue"). Feeders are woken by the writer's head-of-log watch
//! and read the log themselves; nothing is queued in memory.

pub mod filter;
pub mod outbound;

use std::collections::HashMap;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::PeerConfig;
use crate::store::{Store, StoreError};

struct Running {
    config: PeerConfig,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The running feeders, by peer name.
pub struct Feeds {
    store: Store,
    head: watch::Receiver<i64>,
    running: HashMap<String, Running>,
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
        let mut feeds = Feeds {
            store,
            head,
            running: HashMap::new(),
        };
        feeds.reconfigure(peers);
        Ok(feeds)
    }

    /// Applies a new peer list: feeders of removed or changed peers stop,
    /// new and changed ones start. Cursors live in the database, so a
    /// restarted feeder carries on where the old one stopped.
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
        for name in stale {
            if let Some(r) = self.running.remove(&name) {
                info!(peer = %name, "stopping feeder");
                let _ = r.stop.send(true);
            }
        }
        for (name, peer) in wanted {
            if self.running.contains_key(name) {
                continue;
            }
            info!(peer = %name, address = ?peer.address, "starting feeder");
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(outbound::run(
                peer.clone(),
                self.store.clone(),
                self.head.clone(),
                stop_rx,
            ));
            self.running.insert(
                name.to_owned(),
                Running {
                    config: peer.clone(),
                    stop,
                    task,
                },
            );
        }
    }

    /// Stops every feeder and waits for them.
    pub async fn stop(self) {
        for r in self.running.values() {
            let _ = r.stop.send(true);
        }
        for (_, r) in self.running {
            let _ = r.task.await;
        }
    }
}
