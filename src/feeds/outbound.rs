//! One feeder: connects to its peer, offers it every new article it wants
//! (RFC 4644 CHECK/TAKETHIS with a window of commands in flight, or RFC 3977
//! IHAVE when the peer does not stream), and advances its durable cursor.
//!
//! A round takes the articles after the cursor (and retries that fell due),
//! offers the wanted ones, then saves the cursor, the counters and the 431s
//! in one transaction. A crash between offer and save only means the next
//! round offers those articles again, and the peer answers 438/435.
//!
//! A streamed round goes on with the next articles of the log, read while
//! the last ones were on the wire, for up to `ROUND_SPAN`: its window stays
//! full from one part to the next, and drains only at the round's end.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::filter;
use crate::config::PeerConfig;
use crate::store::peers::{FeedCounts, FeedRound, LogArticle};
use crate::store::{Store, StoreError};
use crate::wire::connection::read_deflated_line;
use crate::wire::deflate::ClientLayer;
use crate::wire::dot;

/// Articles read from the log at once (a round, or a part of one), and
/// their bytes at most (but at least one article). The feeder holds a part
/// and the next one, read ahead, and lets an article's bytes go once sent,
/// so 2 x ROUND_BYTES bounds its memory whatever the article sizes.
/// A round's end drains the window, so rounds are long. Flooding a 2 KiB
/// backlog against ingesting it, means of five runs: 59.4k against 61.0k/s
/// with 4,000 (1,000 was worse still), 61.5k against 59.3k/s with 8,000
/// (the feeding server then peaks at 101-108 MiB RSS).
const ROUND: i64 = 8000;
const ROUND_BYTES: i64 = 16 << 20;

/// How long a streamed round takes in further parts of the log before it
/// lets its window drain and saves the cursor. Draining costs the peer the
/// time its last answers take (it waits for more meanwhile): with a round
/// per 16 MiB of 20 KiB articles, ~40 ms each, that was a tenth of a
/// flood. A crash re-offers at most this much of the feed.
const ROUND_SPAN: Duration = Duration::from_secs(1);

/// The most bytes gathered into one write to the peer: it starts on the
/// front of a burst while the rest is being dot-stuffed.
const SEND_CHUNK: usize = 512 << 10;

/// The feeder's clocks. The server runs every feeder on the defaults;
/// tests run one with short ones (`run_with`) to see a hung peer time out
/// or a deferred article come back within seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedTimings {
    /// How long a peer may take to answer one command (or take our bytes).
    pub answer_timeout: Duration,
    /// When a deferred (431/436) article is offered again (whole seconds:
    /// retry times are stored in seconds).
    pub retry_delay: Duration,
    /// The first wait before reconnecting after a failed session.
    pub first_backoff: Duration,
    /// The longest wait between reconnection attempts.
    pub max_backoff: Duration,
    /// A session that lasted this long was healthy: the next failure backs
    /// off from `first_backoff` again.
    pub healthy_after: Duration,
}

impl FeedTimings {
    /// The timings a peer's configuration asks for.
    pub fn of(peer: &PeerConfig) -> FeedTimings {
        let d = FeedTimings::default();
        FeedTimings {
            answer_timeout: Duration::from_secs(peer.answer_timeout_secs),
            retry_delay: Duration::from_secs(peer.retry_delay_secs),
            max_backoff: Duration::from_secs(peer.max_backoff_secs),
            first_backoff: d
                .first_backoff
                .min(Duration::from_secs(peer.max_backoff_secs)),
            healthy_after: d.healthy_after,
        }
    }
}

impl Default for FeedTimings {
    fn default() -> FeedTimings {
        FeedTimings {
            answer_timeout: Duration::from_secs(60),
            retry_delay: Duration::from_secs(30),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            healthy_after: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Error)]
pub enum FeedError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer did not answer within {0:?}")]
    Timeout(Duration),
    #[error("peer said: {0}")]
    Refused(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer answered 400 (RFC 3977 §3.2.1: service no longer
    /// available, the connection closes): it is going away, not refusing
    /// an article, so no article is blamed for it.
    #[error("peer closed the feed: {0}")]
    Closing(String),
    /// The peer closed the connection without a word (a restart, a crash).
    #[error("peer closed the connection")]
    HungUp,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the peer said about one article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Refused,
    Rejected,
    Deferred,
}

/// Why a feeding session ended without an error.
enum Ended {
    Stop,
    Paused,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs the feeder for `peer` until `stop` turns true.
pub async fn run(
    peer: PeerConfig,
    store: Store,
    head: watch::Receiver<i64>,
    stop: watch::Receiver<bool>,
) {
    let timings = FeedTimings::of(&peer);
    run_with(peer, store, head, stop, timings).await
}

/// `run` on the given clocks.
pub async fn run_with(
    peer: PeerConfig,
    store: Store,
    mut head: watch::Receiver<i64>,
    mut stop: watch::Receiver<bool>,
    timings: FeedTimings,
) {
    let name = peer.name.0.clone();
    // A peer new to the database starts at the head of the log now.
    if let Err(e) = store.peer_state(&name).await {
        warn!(peer = %name, "reading feed state: {e}");
    }
    let mut backoff = timings.first_backoff;
    // The article whose answer was awaited when the last session broke
    // (see `feed`).
    let mut suspect: Option<i64> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        match store.peer_paused(&name).await {
            Ok(true) => {
                if wait(&mut stop, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
            Ok(false) => {}
            Err(e) => warn!(peer = %name, "reading feed state: {e}"),
        }
        let started = Instant::now();
        let result = feed(&peer, &store, &mut head, &mut stop, &timings, &mut suspect).await;
        let _ = store.set_peer_connected(&name, None).await;
        match result {
            Ok(Ended::Stop) => return,
            Ok(Ended::Paused) => {
                info!(peer = %name, "feed paused");
                continue;
            }
            Err(e) => {
                warn!(peer = %name, "feed interrupted: {e}; retrying in {backoff:?}");
                let _ = store.set_peer_error(&name, &e.to_string(), now()).await;
                // A session that ran a while was healthy: start backing off
                // afresh.
                if started.elapsed() > timings.healthy_after {
                    backoff = timings.first_backoff;
                }
                if wait(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(timings.max_backoff);
            }
        }
    }
}

/// Returns once the feeder is told to stop (or its `Feeds` is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Sleeps `d`; true if told to stop meanwhile.
async fn wait(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

/// The peer's side of the conversation, read a line at a time.
/// The two halves of the connection, plain TCP or TLS (`tls = true`).
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

struct Link {
    r: BufReader<ReadHalf>,
    w: WriteHalf,
    /// How long the peer may take to answer or to take our bytes.
    timeout: Duration,
    /// COMPRESS DEFLATE is on (the peer's `compress`).
    z: Option<Box<ClientLayer>>,
}

/// The longest answer line taken from a peer.
const MAX_ANSWER: usize = 4096;

impl Link {
    /// True when an answer is already buffered (it can be read without
    /// waiting on the peer).
    fn has_buffered_line(&self) -> bool {
        match &self.z {
            Some(z) => z.has_line(),
            None => memchr::memchr(b'\n', self.r.buffer()).is_some(),
        }
    }

    /// Waits until the peer says something, or closes the connection,
    /// while nothing is owed to us: it should do neither, so whatever it
    /// is ends the session. Cancel safe: what arrives stays buffered.
    async fn said_while_idle(&mut self) -> FeedError {
        match self.r.fill_buf().await {
            Ok([]) => FeedError::HungUp,
            Ok(_) => match self.line().await {
                Ok(line) if code(&line) == 400 => FeedError::Closing(line),
                Ok(line) => FeedError::Protocol(format!("said while idle: {line}")),
                Err(e) => e,
            },
            Err(e) => FeedError::Io(e),
        }
    }

    async fn line(&mut self) -> Result<String, FeedError> {
        let mut buf = Vec::new();
        let timeout = self.timeout;
        let read = async {
            match self.z.as_deref_mut() {
                None => {
                    let mut limited = (&mut self.r).take(MAX_ANSWER as u64);
                    limited.read_until(b'\n', &mut buf).await
                }
                Some(z) => read_deflated_line(z, self.r.get_mut(), &mut buf, MAX_ANSWER)
                    .await
                    .map(|(n, _)| n),
            }
        };
        let n = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| FeedError::Timeout(timeout))??;
        if n == 0 {
            return Err(FeedError::HungUp);
        }
        if !buf.ends_with(b"\n") {
            return Err(FeedError::Protocol("answer line too long".into()));
        }
        Ok(String::from_utf8_lossy(&buf).trim_end().to_owned())
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), FeedError> {
        let bytes = match self.z.as_deref_mut() {
            Some(z) => z.compress(bytes)?,
            None => bytes,
        };
        tokio::time::timeout(self.timeout, self.w.write_all(bytes))
            .await
            .map_err(|_| FeedError::Timeout(self.timeout))??;
        Ok(())
    }

    /// COMPRESS DEFLATE (RFC 8054): true once on; false when the peer
    /// answers anything but 206 (the feed goes on uncompressed).
    async fn compress(&mut self) -> Result<bool, FeedError> {
        self.send(b"COMPRESS DEFLATE\r\n").await?;
        let answer = self.line().await?;
        if code(&answer) != 206 {
            return Ok(false);
        }
        let unread = self.r.buffer().to_vec();
        self.r.consume(unread.len());
        self.z = Some(Box::new(ClientLayer::new(unread)));
        Ok(true)
    }

    /// Reads a dot-terminated block (CAPABILITIES) into lines.
    async fn block(&mut self) -> Result<Vec<String>, FeedError> {
        let mut lines = Vec::new();
        loop {
            let l = self.line().await?;
            if l == "." {
                return Ok(lines);
            }
            if lines.len() > 1000 {
                return Err(FeedError::Protocol("endless capability list".into()));
            }
            lines.push(l);
        }
    }
}

fn code(line: &str) -> u16 {
    line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
}

async fn connect(
    peer: &PeerConfig,
    address: &str,
    timeout: Duration,
) -> Result<(Link, bool), FeedError> {
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(address))
        .await
        .map_err(|_| FeedError::Connect(address.to_owned(), "timed out".into()))?
        .map_err(|e| FeedError::Connect(address.to_owned(), e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (r, w): (ReadHalf, WriteHalf) = if peer.tls {
        let failed = |e: String| FeedError::Connect(address.to_owned(), format!("TLS: {e}"));
        let config =
            crate::tls::client_config(peer.tls_ca.as_deref()).map_err(|e| failed(e.to_string()))?;
        let name = crate::tls::server_name(peer.tls_name.as_deref(), address)
            .map_err(|e| failed(e.to_string()))?;
        let tls = tokio::time::timeout(timeout, crate::tls::connect(config, name, stream))
            .await
            .map_err(|_| failed("handshake timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        let (r, w) = tokio::io::split(tls);
        (Box::new(r), Box::new(w))
    } else {
        let (r, w) = stream.into_split();
        (Box::new(r), Box::new(w))
    };
    let mut link = Link {
        r: BufReader::new(r),
        w,
        timeout,
        z: None,
    };
    let greeting = link.line().await?;
    if !matches!(code(&greeting), 200 | 201) {
        return Err(FeedError::Refused(greeting));
    }
    if let Some(user) = &peer.feed_user {
        log_in(&mut link, user, peer.feed_password.as_ref()).await?;
    }
    // After a login: what the peer offers may depend on who we are.
    link.send(b"CAPABILITIES\r\n").await?;
    let answer = link.line().await?;
    let caps = if code(&answer) == 101 {
        link.block().await?
    } else {
        Vec::new()
    };
    let has = |cap: &str| {
        caps.iter().any(|c| {
            c.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(cap))
        })
    };
    // After any login (RFC 8054 §7: no credentials through a compressor).
    let offers_deflate = caps.iter().any(|c| {
        let mut words = c.split_whitespace();
        words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("COMPRESS"))
            && words.any(|a| a == "DEFLATE")
    });
    if peer.compress && offers_deflate && !link.compress().await? {
        warn!(peer = %peer.name.0, "the peer offers COMPRESS DEFLATE but refused it; feeding uncompressed");
    }
    let mut streaming = false;
    if peer.streaming && has("STREAMING") {
        link.send(b"MODE STREAM\r\n").await?;
        let answer = link.line().await?;
        streaming = code(&answer) == 203;
    }
    if !streaming && !caps.is_empty() && !has("IHAVE") {
        return Err(FeedError::Refused(
            "peer offers neither STREAMING nor IHAVE to us".into(),
        ));
    }
    Ok((link, streaming))
}

/// AUTHINFO USER, then PASS when asked (RFC 4643 §2.3), for a peer that
/// wants us to log in before feeding it. The password never appears in an
/// error or a log line; the peer's answer does.
async fn log_in(
    link: &mut Link,
    user: &str,
    password: Option<&crate::config::Secret>,
) -> Result<(), FeedError> {
    link.send(format!("AUTHINFO USER {user}\r\n").as_bytes())
        .await?;
    let mut answer = link.line().await?;
    if code(&answer) == 381 {
        let Some(password) = password else {
            return Err(FeedError::Refused(format!(
                "login as {user}: the peer asks for a password and feed_password is not set"
            )));
        };
        link.send(format!("AUTHINFO PASS {}\r\n", password.0).as_bytes())
            .await?;
        answer = link.line().await?;
    }
    if code(&answer) == 281 {
        Ok(())
    } else {
        Err(FeedError::Refused(format!("login as {user}: {answer}")))
    }
}

async fn feed(
    peer: &PeerConfig,
    store: &Store,
    head: &mut watch::Receiver<i64>,
    stop: &mut watch::Receiver<bool>,
    timings: &FeedTimings,
    suspect: &mut Option<i64>,
) -> Result<Ended, FeedError> {
    let name = peer.name.0.as_str();
    let Some(address) = &peer.address else {
        return Ok(Ended::Stop);
    };
    let (mut link, streaming) = connect(peer, address, timings.answer_timeout).await?;
    let mut checking = CheckMode::default();
    // The next round's articles, read while this round is on the wire:
    // (the cursor they follow, the articles).
    let mut prefetched: Option<(i64, Vec<LogArticle>)> = None;
    store.set_peer_connected(name, Some(now())).await?;
    info!(peer = %name, %address, streaming, "feed connected");
    loop {
        if *stop.borrow() {
            let _ = link.send(b"QUIT\r\n").await;
            return Ok(Ended::Stop);
        }
        let state = store.known_peer_state(name).await?;
        if state.paused {
            let _ = link.send(b"QUIT\r\n").await;
            return Ok(Ended::Paused);
        }
        // Mark the head seen before looking, so an article committed while
        // we look still wakes the wait below.
        head.borrow_and_update();
        let wants = |head: &[u8], size: usize| filter::check_sized(peer, head, size).is_ok();
        let retries = (store.due_retries(name, now(), ROUND, ROUND_BYTES, &wants)).await?;
        let fresh = match prefetched.take() {
            Some((after, articles)) if after == state.cursor => articles,
            _ => {
                store
                    .articles_after(state.cursor, ROUND, ROUND_BYTES, &wants)
                    .await?
            }
        };
        if retries.is_empty() && fresh.is_empty() {
            if state.rate != 0.0 {
                store.set_peer_idle(name).await?;
            }
            // Nothing to do: wait for the writer, a retry falling due, or
            // a second (to notice pause and stop).
            let next_retry = store.next_retry_at(name).await?;
            let idle = match next_retry {
                Some(at) => Duration::from_secs((at - now()).clamp(0, 1) as u64),
                None => Duration::from_secs(1),
            };
            tokio::select! {
                _ = head.changed() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => {}
                // A peer that closes an idle feed (INN after its
                // peertimeout) is noticed now and connected to again,
                // not when the next article finds the connection dead.
                said = link.said_while_idle() => return Err(said),
            }
            continue;
        }

        let started = Instant::now();
        let mut stopping = false;
        let retry_ids: Vec<i64> = retries.iter().map(|a| a.id).collect();
        let mut round = Round::default();
        round.take(peer, retries);
        let mut fresh_ids: Vec<i64> = Vec::new();
        let mut part = fresh;
        loop {
            // A full part (in articles or bytes) means more is waiting:
            // read it meanwhile, so the peer is not left idle.
            let last_fresh = part.last().map(|a| a.id);
            let full = part.len() as i64 == ROUND
                || part.iter().map(|a| a.size as i64).sum::<i64>() >= ROUND_BYTES;
            fresh_ids.extend(part.iter().map(|a| a.id));
            round.take(peer, part);
            // Whether the round goes on with what is read meanwhile: then
            // this part only has to be sent, not answered.
            let go_on = streaming && full && started.elapsed() < ROUND_SPAN;
            let read_ahead = async {
                match last_fresh {
                    Some(last) if full => {
                        let ahead = store.articles_after(last, ROUND, ROUND_BYTES, &wants);
                        Some((last, ahead.await))
                    }
                    _ => None,
                }
            };
            let offer = async {
                if streaming {
                    stream_part(&mut link, &mut round, peer.window, &mut checking, !go_on).await
                } else {
                    ihave_round(&mut link, &mut round).await
                }
            };
            // Told to stop, the round ends where it is: what was answered
            // is saved below, what was sent and not answered yet is offered
            // again first thing by the next feeder.
            let both = async { tokio::join!(offer, read_ahead) };
            let ahead = tokio::select! {
                ((), ahead) = both => ahead,
                () = stopped(stop) => {
                    stopping = true;
                    break;
                }
            };
            let ahead = match ahead {
                Some((after, Ok(articles))) => Some((after, articles)),
                _ => None,
            };
            if !go_on || round.error.is_some() {
                prefetched = ahead;
                break;
            }
            match ahead {
                Some((_, articles)) if !articles.is_empty() => part = articles,
                _ => {
                    // Nothing more after all: collect the answers still due.
                    let rest = stream_part(&mut link, &mut round, peer.window, &mut checking, true);
                    tokio::select! {
                        () = rest => {}
                        () = stopped(stop) => stopping = true,
                    }
                    break;
                }
            }
        }
        // The cursor passes every fresh article before the first one not
        // offered yet (all of them when the round ran to its end).
        let first_unsent = round.articles[round.sent..]
            .iter()
            .map(|a| a.id)
            .find(|&id| id > state.cursor);
        let new_cursor = fresh_ids
            .iter()
            .take_while(|&&id| first_unsent.is_none_or(|u| id < u))
            .last()
            .map_or(state.cursor, |&id| id);
        let mut counts = FeedCounts {
            offered: round.sent as i64,
            ..FeedCounts::default()
        };
        let mut retry = Vec::new();
        let mut again_now = Vec::new();
        for (i, a) in round.articles.iter().enumerate().take(round.sent) {
            match round.verdicts[i] {
                Some(Verdict::Accepted) => counts.accepted += 1,
                Some(Verdict::Refused) => counts.refused += 1,
                Some(Verdict::Rejected) => counts.rejected += 1,
                Some(Verdict::Deferred) => {
                    counts.deferred += 1;
                    retry.push(a.id);
                }
                // Offered, but the session broke before the answer: all
                // are offered again first thing on the next connection (a
                // peer restarting hangs up on whatever it was sent), except
                // an article whose answer was awaited when the session
                // broke twice in a row: that one waits for the retry
                // delay, so an article the peer chokes on cannot hold up
                // the feed. A peer that said it was closing (400) blames
                // none.
                None if round.blamed == Some(i) => {
                    if suspect.replace(a.id) == Some(a.id) {
                        retry.push(a.id);
                    } else {
                        again_now.push(a.id);
                    }
                }
                None => again_now.push(a.id),
            }
        }
        let unsent: Vec<i64> = round.articles[round.sent..].iter().map(|a| a.id).collect();
        let done: Vec<i64> = retry_ids
            .iter()
            .copied()
            .filter(|id| !unsent.contains(id) && !retry.contains(id) && !again_now.contains(id))
            .collect();
        if !again_now.is_empty() {
            // Recorded before the cursor moves past them: a crash between
            // the two only means they are offered twice.
            let again = FeedRound {
                from: state.cursor,
                cursor: state.cursor,
                counts: FeedCounts::default(),
                rate: state.rate,
                retry: &again_now,
                retry_at: now(),
                retried: &[],
            };
            store.save_feed_round(name, again).await?;
        }
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        let outcome = FeedRound {
            from: state.cursor,
            cursor: new_cursor,
            counts,
            rate: counts.accepted as f64 / secs,
            retry: &retry,
            retry_at: now() + timings.retry_delay.as_secs() as i64,
            retried: &done,
        };
        store.save_feed_round(name, outcome).await?;
        debug!(peer = %name, cursor = new_cursor, ?counts, "round done");
        if stopping {
            // Cut off in the middle of a command: no QUIT after it.
            return Ok(Ended::Stop);
        }
        if let Some(e) = round.error {
            return Err(e);
        }
    }
}

/// A command sent and not answered yet, by the index of its article.
#[derive(Clone, Copy)]
enum Sent {
    Check(usize),
    TakeThis(usize),
}

impl Sent {
    fn index(self) -> usize {
        match self {
            Sent::Check(i) | Sent::TakeThis(i) => i,
        }
    }
}

/// A round of offers: the articles the peer wants, what it said of each,
/// and (streaming) what is on the wire, carried from one part of the
/// round to the next.
#[derive(Default)]
struct Round {
    /// The articles to offer, in order. An article's bytes are let go once
    /// it is sent for good (or refused), so a long round holds only what
    /// is still to go.
    articles: Vec<LogArticle>,
    /// Per article: the peer's verdict, if it gave one.
    verdicts: Vec<Option<Verdict>>,
    /// How many articles (from the front) were offered.
    sent: usize,
    /// The article whose answer was awaited when the session broke.
    blamed: Option<usize>,
    /// Why the session broke, if it did.
    error: Option<FeedError>,
    /// Commands awaiting their answers, in the order sent.
    outstanding: VecDeque<Sent>,
    /// Articles answered 238, for TAKETHIS.
    takethis: VecDeque<usize>,
    /// Articles in the window: offered and not yet answered for good.
    in_flight: usize,
    /// A write to the peer failed: the answers to what went before are
    /// read, then the round ends with this.
    broken: Option<FeedError>,
}

impl Round {
    /// Adds the articles of `batch` that `peer` takes.
    fn take(&mut self, peer: &PeerConfig, batch: Vec<LogArticle>) {
        for a in batch {
            // The filter said yes already to an article whose body was
            // read for it; asked again, it only parses the head again.
            let verdict = match a.wanted {
                true => Ok(()),
                false => filter::check_sized(peer, &a.bytes, a.size),
            };
            match verdict {
                // Its damaged body was logged when it was read.
                Ok(()) if a.unreadable => {}
                Ok(()) => {
                    self.articles.push(a);
                    self.verdicts.push(None);
                }
                Err(skip) => debug!(peer = %peer.name.0, id = a.id, ?skip, "not for this peer"),
            }
        }
    }

    /// More can go out now: an article answered 238, or a new offer with
    /// room in the window.
    fn can_send(&self, window: usize) -> bool {
        !self.takethis.is_empty() || (self.sent < self.articles.len() && self.in_flight < window)
    }

    /// Appends TAKETHIS and `i` to `out`, and lets the article's bytes go.
    fn push_takethis(&mut self, i: usize, out: &mut Vec<u8>) {
        let a = &mut self.articles[i];
        out.extend_from_slice(format!("TAKETHIS {}\r\n", a.msgid).as_bytes());
        dot::stuff(&a.bytes, out);
        a.bytes = Vec::new();
        self.outstanding.push_back(Sent::TakeThis(i));
    }
}

/// Whether to ask CHECK before sending an article, learnt from the peer's
/// answers, as innfeed does: while nearly every CHECK is answered 238, the
/// question only costs a round trip, so articles go straight out with
/// TAKETHIS; when TAKETHIS starts meeting refusals (the peer has them from
/// elsewhere), CHECK comes back to save sending them.
#[derive(Debug, Default)]
struct CheckMode {
    skip_check: bool,
    /// Answers seen in the current sample, and how many were "send it"
    /// (238, or 239 while skipping).
    seen: u32,
    wanted: u32,
}

impl CheckMode {
    const SAMPLE: u32 = 200;

    fn record(&mut self, wanted: bool) {
        self.seen += 1;
        self.wanted += u32::from(wanted);
        if self.seen < Self::SAMPLE {
            return;
        }
        let ratio = f64::from(self.wanted) / f64::from(self.seen);
        // Hysteresis: stop checking at 95% wanted, resume below 90%.
        self.skip_check = if self.skip_check {
            ratio >= 0.90
        } else {
            ratio >= 0.95
        };
        self.seen = 0;
        self.wanted = 0;
    }
}

/// Offers the articles of `round` not offered yet with CHECK, and sends
/// TAKETHIS for those wanted (or sends TAKETHIS at once while `mode` says
/// CHECK is not worth it), keeping up to `window` articles in flight (RFC
/// 4644 §2). Returns once every answer is in when `drain`; otherwise as
/// soon as every article has gone out, the rest of the window still on
/// the wire for the round's next part.
async fn stream_part(
    link: &mut Link,
    round: &mut Round,
    window: usize,
    mode: &mut CheckMode,
    drain: bool,
) {
    let mut out = Vec::new();
    loop {
        out.clear();
        // Wanted articles first (they already hold a place in the window),
        // then new offers while fewer than `window` articles are in flight.
        // Answers already received are taken in first, so the window is
        // refilled with one write per burst of answers, not one per answer.
        let answers_waiting = !round.outstanding.is_empty() && link.has_buffered_line();
        while round.broken.is_none() && !answers_waiting && out.len() < SEND_CHUNK {
            if let Some(i) = round.takethis.pop_front() {
                round.push_takethis(i, &mut out);
            } else if round.sent < round.articles.len() && round.in_flight < window {
                let i = round.sent;
                if mode.skip_check {
                    round.push_takethis(i, &mut out);
                } else {
                    let msgid = &round.articles[i].msgid;
                    out.extend_from_slice(format!("CHECK {msgid}\r\n").as_bytes());
                    round.outstanding.push_back(Sent::Check(i));
                }
                round.in_flight += 1;
                round.sent += 1;
            } else {
                break;
            }
        }
        if !out.is_empty()
            && let Err(e) = link.send(&out).await
        {
            round.broken = Some(e);
        }
        if round.broken.is_none() {
            // A write cut short at `SEND_CHUNK`: the rest goes first.
            if round.can_send(window) && !link.has_buffered_line() {
                continue;
            }
            if !drain && round.sent == round.articles.len() && round.takethis.is_empty() {
                return;
            }
        }
        let Some(sent) = round.outstanding.pop_front() else {
            round.error = round.broken.take();
            return;
        };
        let i = sent.index();
        let answer = match link.line().await {
            Ok(a) => a,
            Err(e) => {
                round.blamed = Some(i);
                round.error = Some(e);
                return;
            }
        };
        let articles = &round.articles;
        let expected = match sent {
            Sent::Check(_) => [238, 431, 438],
            Sent::TakeThis(_) => [239, 439, 439],
        };
        let c = code(&answer);
        if c == 400 {
            // Shutting down (a restart, say): every article without an
            // answer is offered first thing on the next connection.
            round.error = Some(FeedError::Closing(answer));
            return;
        }
        // 501: the peer finds the command (the message-id) bad; it will
        // never take this article, and the stream is still in step.
        let problem = if c == 501 {
            None
        } else if !expected.contains(&c) {
            Some(format!(
                "unexpected answer {answer:?} for {}",
                articles[i].msgid
            ))
        } else if answer.split_whitespace().nth(1) != Some(articles[i].msgid.as_str()) {
            // RFC 4644 answers name the message-id; a mismatch means we are
            // out of step with the peer.
            Some(format!(
                "answer {answer:?} does not name {}",
                articles[i].msgid
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            round.blamed = Some(i);
            round.error = Some(FeedError::Protocol(problem));
            return;
        }
        if matches!(sent, Sent::TakeThis(_)) || c != 238 {
            round.in_flight -= 1;
        }
        if !mode.skip_check && matches!(sent, Sent::Check(_)) {
            mode.record(c == 238);
        } else if mode.skip_check && matches!(sent, Sent::TakeThis(_)) {
            mode.record(c == 239);
        }
        let verdict = match c {
            238 => {
                round.takethis.push_back(i);
                continue;
            }
            431 => Verdict::Deferred,
            438 => Verdict::Refused,
            239 => Verdict::Accepted,
            _ => Verdict::Rejected,
        };
        round.verdicts[i] = Some(verdict);
        round.articles[i].bytes = Vec::new();
    }
}

/// Offers the articles of `round` one at a time with IHAVE (RFC 3977
/// §6.3.2).
async fn ihave_round(link: &mut Link, round: &mut Round) {
    let mut out = Vec::new();
    for i in round.sent..round.articles.len() {
        round.sent = i + 1;
        match ihave_one(link, &round.articles[i], &mut out).await {
            Ok(v) => {
                round.verdicts[i] = Some(v);
                round.articles[i].bytes = Vec::new();
            }
            Err(e) => {
                if !matches!(e, FeedError::Closing(_)) {
                    round.blamed = Some(i);
                }
                round.error = Some(e);
                return;
            }
        }
    }
}

async fn ihave_one(
    link: &mut Link,
    a: &LogArticle,
    out: &mut Vec<u8>,
) -> Result<Verdict, FeedError> {
    link.send(format!("IHAVE {}\r\n", a.msgid).as_bytes())
        .await?;
    let answer = link.line().await?;
    Ok(match code(&answer) {
        335 => {
            out.clear();
            dot::stuff(&a.bytes, out);
            link.send(out).await?;
            let answer = link.line().await?;
            match code(&answer) {
                235 => Verdict::Accepted,
                436 => Verdict::Deferred,
                437 => Verdict::Rejected,
                400 => return Err(FeedError::Closing(answer)),
                _ => {
                    return Err(FeedError::Protocol(format!(
                        "unexpected answer {answer:?} after sending {}",
                        a.msgid
                    )));
                }
            }
        }
        435 => Verdict::Refused,
        436 => Verdict::Deferred,
        // 501: the peer finds the message-id bad and will never take it.
        437 | 501 => Verdict::Rejected,
        400 => return Err(FeedError::Closing(answer)),
        _ => {
            return Err(FeedError::Protocol(format!(
                "unexpected answer {answer:?} to IHAVE {}",
                a.msgid
            )));
        }
    })
}
