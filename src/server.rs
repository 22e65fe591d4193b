//! The listener: opens the store and the writer, accepts connections within
//! the connection limit, runs a session per connection, and shuts down in
//! order (stop accepting → sessions say 400 and close → the writer commits
//! what it has and stops).
//!
//! Two kinds of listener share one accept loop: plain NNTP (offering
//! STARTTLS when a certificate is configured) and NNTPS, where the TLS
//! handshake comes before the greeting (RFC 4642, RFC 8143).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{Config, StorageConfig};
use crate::feeds::Feeds;
use crate::ingest::{BatchLimits, Ingest, WriterThread};
use crate::session::{self, Session, Shared};
use crate::store::{Store, StoreError};
use crate::tls::{Certificates, Stream, TlsError};
use crate::wire::connection::Connection;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    certificates: Arc<Certificates>,
    shutdown: watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
    sessions: Arc<Semaphore>,
    max_sessions: usize,
    shared: Arc<Shared>,
    feeds: Feeds,
    writer: WriterThread,
    expirer: JoinHandle<()>,
    /// Carries out newgroup and rmgroup (`control`).
    controller: JoinHandle<()>,
}

/// Opens the store (creating the starter groups in a new database), starts
/// the writer and binds every listen address.
pub async fn start(config: Config) -> Result<Server, ServerError> {
    let config = Arc::new(config);
    let storage = &config.storage;
    let (store, created) = Store::open(storage).await?;
    if created {
        for g in &config.groups {
            store
                .add_group(&g.name.0, g.status.0, &g.description, "tidings")
                .await?;
        }
        info!(
            "created database {} with {} groups",
            storage.database.display(),
            config.groups.len()
        );
    }
    let limits = BatchLimits {
        articles: storage.max_batch_articles,
        bytes: storage.max_batch_bytes,
        remember_secs: storage.remember_secs(),
        spin: std::time::Duration::from_micros(storage.spin_micros.into()),
        merge_at: storage.history_tail_ids,
        cancels: config.cancels.process,
        max_size_mib: storage.max_size_mib,
        wal_bytes: storage.wal_size_mib.saturating_mul(1 << 20),
        pin_writer: storage.pin_writer,
    };
    let (ingest, writer) =
        Ingest::start(&store, config.server.path_identity.as_str(), limits).await?;
    let cancel_secrets = store.cancel_secrets().await?;
    crate::control::start_cursors(&store).await?;

    let certificates = Arc::new(Certificates::load(&config.tls)?);
    let mut listeners = Vec::new();
    let plain = config.server.listen.iter().map(|&a| (a, Transport::Plain));
    let tls = config.tls.listen.iter().map(|&a| (a, Transport::Tls));
    for (addr, transport) in plain.chain(tls) {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        listeners.push((listener, local, transport));
    }

    let feeds = Feeds::start(store.clone(), ingest.head(), &config.peers).await?;
    let seen = crate::ingest::check::Seen::start(store.clone());
    let shared = Arc::new(Shared {
        config: std::sync::RwLock::new(config.clone()),
        store,
        ingest,
        seen,
        logins: crate::auth::LoginThrottle::new(config.auth.max_failures_per_minute),
        usage: Default::default(),
        connections: Arc::default(),
        compressing: Arc::default(),
        cancel_secrets,
    });
    let max_sessions = config.limits.max_connections;
    let sessions = Arc::new(Semaphore::new(max_sessions));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let of_kind = |kind: Transport| {
        listeners
            .iter()
            .filter(|(_, _, t)| *t == kind)
            .map(|(_, a, _)| *a)
            .collect()
    };
    let addrs = of_kind(Transport::Plain);
    let tls_addrs = of_kind(Transport::Tls);
    let accept_tasks = listeners
        .into_iter()
        .map(|(listener, _, transport)| {
            tokio::spawn(accept_loop(
                listener,
                transport,
                shared.clone(),
                certificates.clone(),
                sessions.clone(),
                shutdown_rx.clone(),
            ))
        })
        .collect();
    let expirer = tokio::spawn(expire_periodically(shared.clone()));
    // Control messages are read by number: the pass follows the overview
    // as the writer writes it (`store::overview`), not the log's head.
    let written = shared.store.visibility().written();
    let controller = tokio::spawn(crate::control::run(shared.clone(), written));
    Ok(Server {
        addrs,
        tls_addrs,
        certificates,
        shutdown,
        accept_tasks,
        sessions,
        max_sessions,
        shared,
        feeds,
        writer,
        expirer,
        controller,
    })
}

/// Expires by the `[expire]` rules every `expire.interval_secs`, read again
/// before each run so that a reload applies (INN needs a nightly cron job
/// for this). The first run comes a minute after start (sooner with a
/// shorter interval), so a server restarted often still expires. Each run
/// works in small transactions beside the writer.
async fn expire_periodically(shared: Arc<Shared>) {
    let mut first = true;
    loop {
        let every = shared.config().expire.interval_secs;
        // 0: expiry is left to `tidings expire`; look again in a minute, in
        // case a reload has set an interval.
        let wait = match every {
            0 => 60,
            n if first => n.min(60),
            n => n,
        };
        first = false;
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let config = shared.config();
        if config.expire.interval_secs == 0 {
            continue;
        }
        let now = chrono::Utc::now().timestamp();
        match shared.store.expire_by(&config, now).await {
            Ok(r) if r.numbers > 0 || r.forgotten > 0 => info!(
                articles = r.articles,
                bytes = r.bytes,
                numbers = r.numbers,
                groups = r.groups,
                forgotten = r.forgotten,
                "expired"
            ),
            Ok(_) => {}
            Err(e) => warn!("expiry failed, trying again next time: {e}"),
        }
    }
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// NNTP in clear, with STARTTLS when a certificate is configured.
    Plain,
    /// NNTPS: TLS from the first byte.
    Tls,
}

async fn accept_loop(
    listener: TcpListener,
    transport: Transport,
    shared: Arc<Shared>,
    certificates: Arc<Certificates>,
    sessions: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather
                // than spin.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // One write per response (see INN-NOTES.md): no Nagle delay.
        let _ = stream.set_nodelay(true);
        let per_address = shared.config().limits.max_connections_per_address;
        let Some(slot) = shared.connections.take(peer.ip(), per_address) else {
            warn!(%peer, "too many connections from this address; refusing");
            tokio::spawn(refuse_full(stream));
            continue;
        };
        match sessions.clone().try_acquire_owned() {
            Ok(permit) => {
                let shared = shared.clone();
                let acceptor = certificates.acceptor();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    serve(stream, peer, transport, acceptor, shared, shutdown).await;
                    drop(permit);
                    drop(slot);
                });
            }
            Err(_) => {
                warn!(%peer, "connection limit reached; refusing");
                match transport {
                    Transport::Plain => {
                        tokio::spawn(refuse_full(stream));
                    }
                    // No handshake is spent on a connection that cannot
                    // be served: it is just closed.
                    Transport::Tls => drop(stream),
                }
            }
        }
    }
}

/// Runs one connection: the TLS handshake first on an NNTPS listener, then
/// the session.
async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = shared.config();
    let session = Session::new(shared, peer);
    let (stream, session) = match (transport, acceptor) {
        (Transport::Plain, Some(acceptor)) if config.tls.starttls => {
            (Stream::Plain(tcp), session.offering_starttls(acceptor))
        }
        (Transport::Plain, _) => (Stream::Plain(tcp), session),
        (Transport::Tls, Some(acceptor)) => {
            let handshake = Duration::from_secs(config.tls.handshake_timeout_secs);
            let accepted = tokio::select! {
                r = tokio::time::timeout(handshake, acceptor.accept(tcp)) => r,
                _ = shutdown.wait_for(|&stop| stop) => return,
            };
            match accepted {
                Ok(Ok(tls)) => (Stream::Tls(Box::new(tls)), session.over_tls()),
                Ok(Err(e)) => {
                    info!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    info!(%peer, "TLS handshake not completed in time");
                    return;
                }
            }
        }
        // The certificate was removed by a reload; the listener stays
        // until a restart, but has nothing to offer.
        (Transport::Tls, None) => {
            warn!(%peer, "NNTPS connection refused: no certificate configured");
            return;
        }
    };
    let conn = Connection::new(stream, config.limits.max_line_length);
    session::run(conn, session, shutdown).await;
}

async fn refuse_full(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream
            .write_all(b"400 Too many connections, try again later\r\n")
            .await;
        let _ = stream.shutdown().await;
    })
    .await;
}

impl Server {
    /// The plain NNTP addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The NNTPS addresses actually bound.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The store, for tests and the admin of an in-process server.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Applies a new configuration without a restart: new sessions use it
    /// (peer addresses, limits, MOTD, posting), and feeders of added,
    /// removed or changed peers start or stop. Listen addresses and storage
    /// settings need a restart; a change to them is logged and ignored.
    pub fn reload(&mut self, new: Config) {
        let old = self.shared.config();
        if new.server.listen != old.server.listen || new.tls.listen != old.tls.listen {
            warn!("reload: server.listen or tls.listen changed; it takes effect at the next start");
        }
        // All but max_size_mib are read once, at start (the database, the
        // writer, the body store).
        let storage = StorageConfig {
            max_size_mib: old.storage.max_size_mib,
            ..new.storage.clone()
        };
        if storage != old.storage {
            warn!(
                "reload: [storage] settings other than max_size_mib changed; \
                 they take effect at the next start"
            );
        }
        if new.server.path_identity != old.server.path_identity {
            warn!("reload: server.path_identity changed; it takes effect at the next start");
        }
        let mut new = new;
        new.server.listen = old.server.listen.clone();
        new.tls.listen = old.tls.listen.clone();
        // The certificate and key are read again (renewed certificates):
        // new handshakes use them, sessions already in TLS keep theirs.
        // When they cannot be read, the running ones stay.
        if let Err(e) = self.certificates.reload(&new.tls) {
            warn!("reload: keeping the running TLS certificate: {e}");
            new.tls = old.tls.clone();
        }
        let max_size_mib = new.storage.max_size_mib;
        new.storage = StorageConfig {
            max_size_mib,
            ..old.storage.clone()
        };
        self.shared.ingest.set_max_size(max_size_mib);
        new.server.path_identity = old.server.path_identity.clone();
        self.feeds.reconfigure(&new.peers);
        self.shared.ingest.set_cancel_policy(new.cancels.process);
        let new = Arc::new(new);
        match self.shared.config.write() {
            Ok(mut c) => *c = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        info!(
            "configuration reloaded ({} peers)",
            self.shared.config().peers.len()
        );
    }

    /// Stops accepting, tells every session to finish, waits for them (at
    /// most `grace`), then lets the writer commit what it has and stop.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        for task in self.accept_tasks {
            let _ = task.await;
        }
        let all = u32::try_from(self.max_sessions).unwrap_or(u32::MAX);
        if tokio::time::timeout(grace, self.sessions.acquire_many(all))
            .await
            .is_err()
        {
            warn!("sessions still running after {grace:?}; stopping anyway");
        }
        self.feeds.stop().await;
        // An expiry run stopped mid-way rolls its chunk back; the next run
        // takes it up.
        self.expirer.abort();
        let _ = self.expirer.await;
        // A control message half carried out is read again at the next
        // start (its cursor moves only once it is done).
        self.controller.abort();
        let _ = self.controller.await;
        let store = self.shared.store.clone();
        // The last Ingest handles go with the sessions and this Arc; then the
        // writer drains its queue, commits and stops.
        drop(self.shared);
        self.writer.join().await;
        store.close().await;
        info!("stopped");
    }
}

/// Connections open per client address, for `limits.max_connections_per_address`.
#[derive(Default)]
pub struct PerAddress {
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One connection's place in its address's count; given back on drop.
pub struct AddressSlot {
    ip: std::net::IpAddr,
    counts: Arc<PerAddress>,
}

impl PerAddress {
    /// A slot for one more connection from `ip`, or `None` when it already
    /// has `max`.
    pub fn take(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            ip,
            counts: self.clone(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counts.open.lock()
            && let Some(n) = open.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
