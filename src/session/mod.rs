//! The per-connection state machine (RFC 3977 §3–§5): read a command line,
//! parse it, admit it, run its handler, send the response.
//!
//! Handlers return a `Response` and never touch the socket; only POST needs
//! the connection's help (it reads an article block after its 340), which
//! `Reply::ReadArticle` asks the loop for.

mod access;
mod auth;
mod compress;
mod list;
mod post;
mod reader;
mod starttls;
mod transit;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::{Config, PeerConfig};
use crate::ingest::Ingest;
use crate::ingest::{InFlight, Submission};
use crate::store::{GroupInfo, Store, StoreError};
use crate::wire::codes;
use crate::wire::command::Command;
use crate::wire::connection::{BlockReader, Connection, Line, QuickAck};
use crate::wire::parse::{ParseError, parse_command, verb_is};
use crate::wire::response::Response;
use crate::wire::types::MessageId;
use transit::Pending;

/// What every session shares: configuration, the store, the ingest handle.
pub struct Shared {
    /// The configuration in force; a reload swaps it, and each new session
    /// takes the one current when it starts.
    pub config: std::sync::RwLock<Arc<Config>>,
    pub store: Store,
    pub ingest: Ingest,
    /// Batched history look-ups for CHECK.
    pub seen: crate::ingest::check::Seen,
    /// Failed logins per address.
    pub logins: crate::auth::LoginThrottle,
    /// Posting rates and download volumes, for the access rules' limits.
    pub usage: access::Usage,
    /// Connections open per client address.
    pub connections: Arc<crate::server::PerAddress>,
    /// Connections with COMPRESS active (`limits.max_compressed_connections`).
    pub compressing: Arc<std::sync::atomic::AtomicUsize>,
    /// The secrets behind our posts' Cancel-Locks (RFC 8315), kept in the
    /// database.
    pub cancel_secrets: crate::article::cancel_lock::Secrets,
}

impl Shared {
    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// The group a session has selected, as GROUP reported it.
#[derive(Debug, Clone)]
struct Selected {
    id: i64,
    name: String,
}

impl Selected {
    fn from_info(g: &GroupInfo) -> Selected {
        Selected {
            id: g.id,
            name: g.name.clone(),
        }
    }
}

/// One client's session state.
pub struct Session {
    shared: Arc<Shared>,
    config: Arc<Config>,
    peer: SocketAddr,
    /// The configured peer this connection comes from, if any: only peers
    /// may use the transit commands.
    peer_config: Option<PeerConfig>,
    group: Option<Selected>,
    /// The current article number (RFC 3977 §6.1): only set with a group.
    current: Option<u64>,
    /// Who logged in (RFC 4643), and a name given by AUTHINFO USER that
    /// waits for its PASS.
    user: Option<String>,
    pending_user: Option<String>,
    /// AUTHINFO SASL answered 383: the next line is the client's response.
    sasl_waiting: bool,
    /// The access rule in force (`[[access]]`), recomputed on login.
    rule: crate::config::AccessRule,
    /// Whether the connection is encrypted (NNTPS, or after STARTTLS).
    tls: bool,
    /// The certificate STARTTLS would present, when it is offered.
    starttls: Option<tokio_rustls::TlsAcceptor>,
    /// COMPRESS is active (RFC 8054), holding one of the places for it.
    compression: Option<compress::CompressSlot>,
    /// The message-id the last POST's 340 answer recommended: the article
    /// that follows gets it when it has none (`post`).
    offered_id: Option<MessageId>,
}

/// What the connection loop must do after a command.
enum Reply {
    Send(Response),
    /// An answer that will be ready later (CHECK's look-up).
    Owe(Pending),
    /// Send the 340 prompt, read an article block, hand it to `post`.
    ReadArticle(Response),
    /// Send 335, read the offered article, hand it to `ihave_article`.
    ReadIhave(MessageId, InFlight),
    /// Read the article that follows TAKETHIS (always, even when refused,
    /// so the stream stays in step), then take it, or answer the refusal
    /// given (RFC 4644 §2.5: the article is sent whatever the answer).
    ReadTakeThis(MessageId, Option<Response>),
    /// Send 382 and run the TLS handshake (RFC 4642 §2.2.2).
    StartTls(tokio_rustls::TlsAcceptor),
    /// Send 206 and start compressing both ways (RFC 8054 §2.2.2).
    Compress(compress::CompressSlot),
}

impl Session {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Session {
        let config = shared.config();
        let peer_config = config
            .peers
            .iter()
            .find(|p| p.accept_from.iter().any(|net| net.contains(peer.ip())))
            .cloned();
        let rule = access::rule_for(&config, peer.ip(), None);
        Session {
            shared,
            config,
            peer,
            peer_config,
            group: None,
            current: None,
            user: None,
            pending_user: None,
            sasl_waiting: false,
            rule,
            tls: false,
            starttls: None,
            compression: None,
            offered_id: None,
        }
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The greeting (RFC 3977 §5.1): 502 for a client an access rule
    /// denies (the connection is then closed).
    pub fn greeting(&self) -> Response {
        let c = self.config();
        if self.rule.deny {
            return Response::new(codes::NOT_PERMITTED, "Access denied");
        }
        if self.may_post_anywhere() {
            Response::new(
                codes::READY_POSTING_ALLOWED,
                format!(
                    "{} tidings NNTP server ready, posting allowed",
                    c.server.path_identity.as_str()
                ),
            )
        } else {
            Response::new(
                codes::READY_NO_POSTING,
                format!(
                    "{} tidings NNTP server ready, no posting",
                    c.server.path_identity.as_str()
                ),
            )
        }
    }

    /// Admission: may this command run now? Every reader command is open to
    /// every client; transit commands (IHAVE, CHECK, TAKETHIS, MODE STREAM)
    /// only to connections from a configured peer's addresses (RFC 3977
    /// §3.2.1: 502 for a service this client may never use); STARTTLS only
    /// while TLS may start. TAKETHIS is refused after its article
    /// has been read (see `dispatch`).
    fn admit(&self, command: &Command) -> Result<(), Response> {
        // RFC 4643 §2.2: until a reader logs in where login is required,
        // only the commands needed to log in (and to leave) are served.
        // Peers are known by their address and need no login.
        let needs_login = (self.config().auth.required || self.rule.login_required)
            && self.user.is_none()
            && self.peer_config.is_none()
            && !matches!(
                command,
                Command::Capabilities
                    | Command::ModeReader
                    | Command::Quit
                    | Command::Help
                    | Command::Date
                    | Command::AuthinfoUser(_)
                    | Command::AuthinfoPass(_)
                    | Command::AuthinfoSasl { .. }
                    | Command::StartTls
            );
        if needs_login {
            return Err(Response::new(
                codes::AUTH_REQUIRED,
                "Authentication required",
            ));
        }
        match command {
            // RFC 8054 §2.2.2: no second compression layer, no TLS under
            // it, and no credentials sent through it.
            Command::Compress(_)
            | Command::StartTls
            | Command::AuthinfoUser(_)
            | Command::AuthinfoPass(_)
            | Command::AuthinfoSasl { .. }
                if self.compressed() =>
            {
                Err(Session::already_compressed())
            }
            Command::Compress(_) if !self.may_compress() => Err(Response::new(
                codes::NOT_PERMITTED,
                "Compression not offered here",
            )),
            Command::Ihave(_) | Command::Check(_) | Command::ModeStream
                if !self.transit_allowed() =>
            {
                Err(self.transit_refused())
            }
            // RFC 4642 §2.2.1: 502 when TLS is already active, after
            // authentication, or when it is not offered at all.
            Command::StartTls if !self.may_start_tls() => Err(Response::new(
                codes::NOT_PERMITTED,
                "STARTTLS not available now",
            )),
            Command::Post if !self.may_post_anywhere() => Err(Response::new(
                codes::POSTING_NOT_PERMITTED,
                "Posting not permitted",
            )),
            _ => Ok(()),
        }
    }

    async fn dispatch(&mut self, command: Command) -> Result<Reply, StoreError> {
        if let Err(refusal) = self.admit(&command) {
            return Ok(match command {
                Command::TakeThis(id) => Reply::ReadTakeThis(id, Some(refusal)),
                _ => Reply::Send(refusal),
            });
        }
        let response = match command {
            Command::Capabilities => self.capabilities(),
            Command::ModeReader => self.greeting(),
            Command::Quit => Response::new(codes::CLOSING, "Bye"),
            Command::Help => help(),
            Command::Date => Response::new(
                codes::DATE,
                chrono::Utc::now().format("%Y%m%d%H%M%S").to_string(),
            ),
            Command::Group(name) => self.group(&name).await?,
            Command::ListGroup { group, range } => self.list_group(group, range).await?,
            Command::Last => self.step(false).await?,
            Command::Next => self.step(true).await?,
            Command::Article(part, r) => self.article(part, r).await?,
            Command::Post => {
                // A message-id the client may use, in INN's words, which
                // newsreaders look for (RFC 3977 leaves the text free).
                self.offered_id = crate::article::new_message_id(
                    self.config.server.domain.as_str(),
                    chrono::Utc::now(),
                );
                let text = match &self.offered_id {
                    Some(id) => format!("Ok, recommended Message-ID {id}"),
                    None => "Send article to be posted. End with <CR-LF>.<CR-LF>".to_owned(),
                };
                return Ok(Reply::ReadArticle(Response::new(
                    codes::SEND_ARTICLE_POST,
                    text,
                )));
            }
            Command::ModeStream => Response::new(codes::STREAMING_OK, "Streaming permitted"),
            Command::Check(id) => return Ok(Reply::Owe(self.check(&id).await)),
            Command::Ihave(id) => match self.ihave_offer(&id).await {
                Ok(Ok(guard)) => return Ok(Reply::ReadIhave(id, guard)),
                Ok(Err(refusal)) => refusal,
                // RFC 3977 §6.3.2: 436, so the peer offers it again later
                // (403 would leave it to the peer whether to).
                Err(e) => {
                    warn!(peer = %self.peer, %id, "IHAVE: looking up history: {e}");
                    Response::new(
                        codes::TRANSFER_LATER,
                        "Transfer not possible; try again later",
                    )
                }
            },
            Command::TakeThis(id) => {
                let refusal = (!self.transit_allowed()).then(|| self.transit_refused());
                return Ok(Reply::ReadTakeThis(id, refusal));
            }
            Command::NewGroups { since } => self.new_groups(since).await?,
            Command::NewNews { wildmat, since } => self.new_news(&wildmat, since).await?,
            Command::List(kind) => self.list(kind).await?,
            Command::Over { selection, .. } => self.over(selection).await?,
            Command::Hdr {
                field,
                selection,
                legacy,
            } => self.hdr(&field, selection, legacy, None).await?,
            Command::XPat {
                field,
                selection,
                patterns,
            } => self.hdr(&field, selection, true, Some(&patterns)).await?,
            Command::XGTitle(wildmat) => self.xgtitle(wildmat).await?,
            Command::AuthinfoUser(name) => self.authinfo_user(name),
            Command::AuthinfoPass(password) => self.authinfo_pass(password).await?,
            Command::AuthinfoSasl { mechanism, initial } => {
                self.authinfo_sasl(&mechanism, initial.as_deref()).await?
            }
            Command::StartTls => match self.starttls.clone() {
                Some(acceptor) => return Ok(Reply::StartTls(acceptor)),
                // Refused by admit().
                None => Response::new(codes::NOT_PERMITTED, "STARTTLS not available now"),
            },
            Command::Compress(algorithm) => match self.compress(&algorithm) {
                Ok(slot) => return Ok(Reply::Compress(slot)),
                Err(refusal) => refusal,
            },
        };
        Ok(Reply::Send(response))
    }

    /// CAPABILITIES (RFC 3977 §5.2): only what works.
    fn capabilities(&self) -> Response {
        let mut body = String::from("VERSION 2\r\n");
        body.push_str(concat!(
            "IMPLEMENTATION tidings ",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
        body.push_str("READER\r\n");
        // RFC 4642 §2.1: only before TLS (and before authentication).
        if self.may_start_tls() {
            body.push_str("STARTTLS\r\n");
        }
        if let Some(line) = self.authinfo_capability() {
            body.push_str(line);
        }
        if self.may_compress() {
            body.push_str("COMPRESS DEFLATE\r\n");
        }
        if self.transit_allowed() {
            body.push_str("IHAVE\r\nSTREAMING\r\n");
        }
        if self.may_post_anywhere() {
            body.push_str("POST\r\n");
        }
        body.push_str("NEWNEWS\r\n");
        body.push_str("HDR\r\n");
        body.push_str("OVER MSGID\r\n");
        body.push_str(
            "LIST ACTIVE ACTIVE.TIMES COUNTS DISTRIB.PATS DISTRIBUTIONS HEADERS MODERATORS MOTD NEWSGROUPS OVERVIEW.FMT SUBSCRIPTIONS\r\n",
        );
        Response::with_body(
            codes::CAPABILITIES_FOLLOW,
            "Capability list:",
            body.into_bytes(),
        )
    }
}

fn help() -> Response {
    let text = "\
ARTICLE [message-id|number]\r\n\
AUTHINFO USER name | AUTHINFO PASS password | AUTHINFO SASL PLAIN response\r\n\
BODY [message-id|number]\r\n\
CAPABILITIES [keyword]\r\n\
COMPRESS DEFLATE\r\n\
DATE\r\n\
GROUP newsgroup\r\n\
HDR header [message-id|range]\r\n\
HEAD [message-id|number]\r\n\
HELP\r\n\
LAST\r\n\
LIST [ACTIVE|ACTIVE.TIMES|COUNTS|DISTRIB.PATS|HEADERS|MOTD|NEWSGROUPS|OVERVIEW.FMT|SUBSCRIPTIONS] [wildmat]\r\n\
LISTGROUP [newsgroup [range]]\r\n\
MODE READER\r\n\
NEWGROUPS [yy]yymmdd hhmmss [GMT]\r\n\
NEWNEWS wildmat [yy]yymmdd hhmmss [GMT]\r\n\
NEXT\r\n\
OVER [range|message-id]\r\n\
POST\r\n\
QUIT\r\n\
STARTTLS\r\n\
STAT [message-id|number]\r\n\
XGTITLE [wildmat]\r\n\
XHDR header [range|message-id]\r\n\
XOVER [range]\r\n\
XPAT header range|message-id pattern [pattern ...]\r\n";
    Response::with_body(
        codes::HELP_FOLLOWS,
        "Legal commands",
        text.as_bytes().to_vec(),
    )
}

/// Why the session stopped waiting on its client.
enum Interrupted {
    /// Nothing moved within the idle timeout.
    Idle,
    /// The server is shutting down.
    Shutdown,
    Io(std::io::Error),
}

/// How long a closing session tries to deliver its last answer (205, 400)
/// to a client that may not be reading before it drops the connection.
const FAREWELL: Duration = Duration::from_secs(1);

/// Runs one wait on the client (a command line, an article block, a flush)
/// under the idle timeout and the shutdown signal. Every wait goes through
/// here: a client that stops sending mid-article or stops reading its
/// answers holds its connection for at most the idle timeout (RFC 3977
/// §3.1 lets a server close an idle connection), and never holds up
/// shutdown, which waits for every session to end.
async fn guarded<T>(
    io: impl Future<Output = std::io::Result<T>>,
    idle: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<T, Interrupted> {
    tokio::select! {
        r = tokio::time::timeout(idle, io) => match r {
            Ok(Ok(v)) => Ok(v),
            // A command line that took too long to finish (slowloris).
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => Err(Interrupted::Idle),
            Ok(Err(e)) => Err(Interrupted::Io(e)),
            Err(_) => Err(Interrupted::Idle),
        },
        // wait_for, not changed(): it also sees a shutdown that began while
        // this session was busy with a command.
        _ = shutdown.wait_for(|&stop| stop) => Err(Interrupted::Shutdown),
    }
}

/// Says goodbye after an interrupted wait: 400 when the client may still
/// be listening, nothing when it had stopped reading (the answer would
/// never get through).
async fn farewell<S: AsyncRead + AsyncWrite + Unpin + QuickAck>(
    conn: &mut Connection<S>,
    peer: SocketAddr,
    why: Interrupted,
    while_writing: bool,
) {
    let text = match why {
        Interrupted::Io(e) => {
            debug!(%peer, "connection lost: {e}");
            return;
        }
        Interrupted::Idle => {
            info!(%peer, "idle timeout");
            "Idle timeout"
        }
        Interrupted::Shutdown => "Server shutting down",
    };
    if !while_writing {
        conn.send(&Response::new(codes::SERVICE_DISCONTINUED, text));
        let _ = tokio::time::timeout(FAREWELL, conn.close()).await;
    }
}

/// Answers a streaming session may owe before it stops reading ahead.
const MAX_PENDING: usize = 1024;

/// TAKETHIS articles gathered from one burst before they are submitted.
/// Small, so the writer starts on the front of a peer's burst while the
/// rest is still being read and checked, rather than after all of it (the
/// writer still takes everything waiting into one transaction, and holds
/// its commit for the next part when the session has it in hand:
/// `ingest::HOLD_FOR_MORE`). Medians, one connection: TAKETHIS-only 2 KiB
/// 53.5k -> 59.6k/s and 20 KiB 13.2k -> 15.1k/s with 16 instead of 256.
/// 8 then cost four connections 6%; with the writer's hold keeping a
/// burst in one commit, 8 instead of 16 gave (means of 8 interleaved
/// rounds) window 64 pipelined 55.5k -> 60.4k/s, and of 4: CHECK-first
/// window 20 +5%, TAKETHIS-only window 20 +3.5%, 20 KiB +2%, while four
/// connections lost 3% and window 256 2%.
const MAX_STAGED: usize = 8;

/// A streaming session owed at most this many answers polls for them
/// before it sleeps, when it is the only session waiting on the writer
/// (`Ingest::poll_budget`): its peer keeps a small window (innfeed's
/// default is 20 articles), so it waits on every commit, and the tens of
/// microseconds a sleeping worker takes to be woken are lost throughput.
/// A larger window keeps the writer busy by itself, and the CPU is better
/// left to it. Medians of interleaved runs, one connection: CHECK-first
/// window 20 15.1k -> 16.5k/s and 16.9k -> 18.4k/s; polling at every
/// window cost window 64 9% and window 256 15%, which this bound avoids
/// (window 64 35.4k -> 35.8k/s). Four connections and IHAVE: the same.
const SPIN_PENDING: usize = 32;

/// Sends every answer at the front of `pending` that is ready. `Err` when
/// the connection must close (a TAKETHIS could not be stored: 400 sent).
fn send_ready<S: AsyncRead + AsyncWrite + Unpin + QuickAck>(
    pending: &mut VecDeque<Pending>,
    conn: &mut Connection<S>,
) -> Result<(), ()> {
    while let Some(front) = pending.front_mut() {
        let Some(answer) = front.try_answer() else {
            return Ok(());
        };
        pending.pop_front();
        deliver(conn, answer)?;
    }
    Ok(())
}

/// Sends an owed answer; `Err` when it closes the connection.
fn deliver<S: AsyncRead + AsyncWrite + Unpin + QuickAck>(
    conn: &mut Connection<S>,
    answer: transit::Answer,
) -> Result<(), ()> {
    match answer {
        Ok(r) => {
            conn.send(&r);
            Ok(())
        }
        Err(r) => {
            conn.send(&r);
            Err(())
        }
    }
}

/// Waits until the oldest owed answer is ready (and sends it) or, when
/// `read_on`, until more input arrives, whichever comes first. `Err` when
/// the connection must close. `may_spin`: it may poll for the answer
/// first (`SPIN_PENDING`); not while the rest of an article is awaited
/// from the network, which polling would not bring sooner.
async fn wait_front_or_input<S: AsyncRead + AsyncWrite + Unpin + QuickAck>(
    pending: &mut VecDeque<Pending>,
    conn: &mut Connection<S>,
    read_on: bool,
    may_spin: bool,
    ingest: &crate::ingest::Ingest,
) -> Result<(), ()> {
    enum Woke {
        Answer(transit::Answer),
        Input(std::io::Result<bool>),
    }
    let owed = pending.len();
    let Some(front) = pending.front_mut() else {
        return Ok(());
    };
    let woke = if read_on {
        let (_waiting, spin) = ingest.poll_budget();
        let spin = if may_spin && owed <= SPIN_PENDING {
            spin
        } else {
            Duration::ZERO
        };
        let started = Instant::now();
        let mut spinner = crate::ingest::Spinner::new();
        loop {
            tokio::select! {
                biased;
                a = front.answer() => break Woke::Answer(a),
                r = conn.read_more() => break Woke::Input(r),
                () = spinner.turn(), if started.elapsed() < spin => {}
            }
        }
    } else {
        Woke::Answer(front.answer().await)
    };
    match woke {
        Woke::Answer(answer) => {
            pending.pop_front();
            deliver(conn, answer)
        }
        Woke::Input(Ok(true)) => Ok(()),
        // The client is gone (or stopped sending): answer what is owed, then close.
        Woke::Input(_) => {
            while !pending.is_empty() {
                if settle_front(pending, conn).await.is_err() {
                    break;
                }
            }
            Err(())
        }
    }
}

/// Waits for the answer at the front of `pending` and sends it.
async fn settle_front<S: AsyncRead + AsyncWrite + Unpin + QuickAck>(
    pending: &mut VecDeque<Pending>,
    conn: &mut Connection<S>,
) -> Result<(), ()> {
    let Some(mut front) = pending.pop_front() else {
        return Ok(());
    };
    deliver(conn, front.answer().await)
}

/// Drives one connection until QUIT, end of stream, idle timeout, an I/O
/// error or shutdown.
///
/// Answers are queued in command order: most are ready at once, but a
/// TAKETHIS waits for its transaction, and meanwhile the session reads on,
/// so the articles a peer streams in one burst share one commit. Output is
/// flushed once per burst (when no complete command is waiting), and never
/// waits longer than the idle timeout on a client that does not read.
pub async fn run(
    conn: Connection<crate::tls::Stream>,
    session: Session,
    shutdown: watch::Receiver<bool>,
) {
    let ingest = session.shared.ingest.clone();
    let mut staged = Vec::new();
    drive(conn, session, shutdown, &mut staged).await;
    // Articles read in full before the connection ended are stored even
    // though their answer can no longer be sent: the peer offers them
    // again and is told it need not send them.
    hand_over(&ingest, &mut staged, false).await;
}

/// Hands the articles staged from a burst to the writer, if there are any
/// (`more_soon` as for `Ingest::submit_batch`).
async fn hand_over(ingest: &Ingest, staged: &mut Vec<Submission>, more_soon: bool) {
    if !staged.is_empty() {
        ingest.submit_batch(std::mem::take(staged), more_soon).await;
    }
}

async fn drive(
    mut conn: Connection<crate::tls::Stream>,
    mut session: Session,
    mut shutdown: watch::Receiver<bool>,
    staged: &mut Vec<Submission>,
) {
    let idle = Duration::from_secs(session.config().limits.idle_timeout_secs);
    let max_output = session.config().limits.max_output_buffer;
    let max_article = session.config().limits.max_article_size;
    let line_timeout = Duration::from_secs(session.config().limits.command_timeout_secs);
    let max_line = session.config().limits.max_line_length;
    let peer = session.peer;
    let mut pending: VecDeque<Pending> = VecDeque::new();
    // `staged`: TAKETHIS articles of the current burst, submitted together
    // once the burst has been read (or before anything waits on them).
    let greeting = session.greeting();
    conn.send(&greeting);
    if greeting.code == codes::NOT_PERMITTED {
        info!(%peer, "denied by an access rule");
        let _ = tokio::time::timeout(FAREWELL, conn.close()).await;
        return;
    }
    loop {
        if !staged.is_empty() && (!conn.has_buffered_line() || staged.len() >= MAX_STAGED) {
            // The writer holds its commit for the next hand-over only when
            // that is certain to come at once: a whole TAKETHIS is here.
            let more_soon = conn.has_buffered_takethis();
            hand_over(&session.shared.ingest, staged, more_soon).await;
        }
        if send_ready(&mut pending, &mut conn).is_err() {
            let _ = tokio::time::timeout(FAREWELL, conn.close()).await;
            return;
        }
        // Flush once per burst: only when no complete command is waiting.
        if !conn.has_buffered_line() || conn.pending_output() >= max_output {
            if let Err(why) = guarded(conn.flush(), idle, &mut shutdown).await {
                farewell(&mut conn, peer, why, true).await;
                return;
            }
            conn.shrink_if_idle();
        }
        // Owed answers and nothing more to read yet (or too many owed):
        // wait for the oldest, reading on meanwhile so the next burst of a
        // streaming peer joins the next batch.
        if !pending.is_empty() && (!conn.has_buffered_line() || pending.len() >= MAX_PENDING) {
            let read_on = pending.len() < MAX_PENDING;
            match wait_front_or_input(
                &mut pending,
                &mut conn,
                read_on,
                true,
                &session.shared.ingest,
            )
            .await
            {
                Ok(()) => continue,
                Err(()) => {
                    let _ = tokio::time::timeout(FAREWELL, conn.close()).await;
                    return;
                }
            }
        }
        let line = match guarded(conn.read_line(line_timeout), idle, &mut shutdown).await {
            Ok(Some(line)) => line,
            Ok(None) => {
                debug!(%peer, "client closed the connection");
                return;
            }
            Err(why) => {
                farewell(&mut conn, peer, why, false).await;
                return;
            }
        };
        let line = match line {
            Line::Line(l) => l,
            Line::TooLong => {
                pending.push_back(Pending::Ready(Response::new(
                    codes::SYNTAX_ERROR,
                    "Command line too long",
                )));
                continue;
            }
        };
        if session.sasl_waiting {
            let answer = match session.sasl_response(&line).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(%peer, "store error: {e}");
                    Response::new(codes::INTERNAL_FAULT, "Internal storage error")
                }
            };
            pending.push_back(Pending::Ready(answer));
            continue;
        }
        let command = match parse_command(&line) {
            Ok(c) => c,
            Err(ParseError::Unknown) => {
                pending.push_back(Pending::Ready(Response::new(
                    codes::UNKNOWN_COMMAND,
                    "Unknown command",
                )));
                continue;
            }
            Err(ParseError::Syntax(reason)) => {
                // A TAKETHIS is followed by its article whatever we think of
                // its arguments (RFC 4644 §2.5): read it, or the rest of the
                // stream would be taken for commands.
                if verb_is(&line, b"TAKETHIS")
                    && let Err(why) =
                        guarded(conn.read_block(max_article), idle, &mut shutdown).await
                {
                    farewell(&mut conn, peer, why, false).await;
                    return;
                }
                pending.push_back(Pending::Ready(Response::new(
                    codes::SYNTAX_ERROR,
                    format!("Syntax error: {reason}"),
                )));
                continue;
            }
        };
        let reply = match session.dispatch(command).await {
            Ok(r) => r,
            Err(e) => {
                warn!(%peer, "store error: {e}");
                Reply::Send(Response::new(
                    codes::INTERNAL_FAULT,
                    "Internal storage error, try again later",
                ))
            }
        };
        // Answers that need the connection to themselves (a prompt, then an
        // article) wait until everything owed has been sent.
        if !matches!(
            reply,
            Reply::Send(_) | Reply::Owe(_) | Reply::ReadTakeThis(..)
        ) || closes(&reply)
        {
            // The answers owed may wait on articles staged from this burst.
            hand_over(&session.shared.ingest, staged, false).await;
            while !pending.is_empty() {
                if settle_front(&mut pending, &mut conn).await.is_err() {
                    let _ = tokio::time::timeout(FAREWELL, conn.close()).await;
                    return;
                }
            }
        }
        match reply {
            Reply::Send(response) => {
                if response.closes() {
                    conn.send(&response);
                    let _ = tokio::time::timeout(FAREWELL, conn.close()).await;
                    return;
                }
                pending.push_back(Pending::Ready(response));
            }
            Reply::Owe(p) => pending.push_back(p),
            Reply::ReadArticle(_) | Reply::ReadIhave(..) => {
                let (prompt, what) = match &reply {
                    Reply::ReadArticle(prompt) => (prompt.clone(), "POST"),
                    _ => (
                        Response::new(codes::SEND_ARTICLE_TRANSFER, "Send it"),
                        "IHAVE",
                    ),
                };
                // Nothing is stored from a half-sent article.
                let block =
                    match prompt_and_read(&mut conn, &prompt, max_article, idle, &mut shutdown)
                        .await
                    {
                        Ok(b) => b,
                        Err((why, while_writing)) => {
                            info!(%peer, "{what} abandoned before its final dot");
                            farewell(&mut conn, peer, why, while_writing).await;
                            return;
                        }
                    };
                let response = match reply {
                    Reply::ReadIhave(id, guard) => session.ihave_article(&id, block, guard).await,
                    _ => session.post(block).await,
                };
                pending.push_back(Pending::Ready(response));
            }
            Reply::StartTls(acceptor) => {
                conn.send(&Response::new(
                    codes::TLS_PROCEED,
                    "Begin TLS negotiation now",
                ));
                if let Err(why) = guarded(conn.flush(), idle, &mut shutdown).await {
                    farewell(&mut conn, peer, why, true).await;
                    return;
                }
                let (stream, unread) = conn.into_parts();
                // Whatever came after STARTTLS in clear was sent before the
                // client could see 382, or was injected by someone on the
                // path (CVE-2011-0411): it is dropped, never read as
                // commands inside TLS (RFC 4642 §2.2.2).
                if !unread.is_empty() {
                    info!(%peer, octets = unread.len(), "plaintext after STARTTLS discarded");
                }
                let handshake = Duration::from_secs(session.config().tls.handshake_timeout_secs);
                let stream = match guarded(
                    crate::tls::accept(&acceptor, stream),
                    handshake,
                    &mut shutdown,
                )
                .await
                {
                    Ok(s) => s,
                    // The socket went with the failed handshake: nothing
                    // more can be said to this client.
                    Err(Interrupted::Io(e)) => {
                        info!(%peer, "STARTTLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        info!(%peer, "STARTTLS handshake not completed in time");
                        return;
                    }
                };
                debug!(%peer, "TLS started");
                conn = Connection::new(stream, max_line);
                session.tls_started();
            }
            Reply::Compress(slot) => {
                // 206 goes out in clear; everything after it, both ways,
                // is compressed (RFC 8054 §2.2.2).
                conn.send(&Response::new(
                    codes::COMPRESSION_ACTIVE,
                    "Compression active",
                ));
                if let Err(why) = guarded(conn.flush(), idle, &mut shutdown).await {
                    farewell(&mut conn, peer, why, true).await;
                    return;
                }
                conn.start_deflate();
                session.compression_started(slot);
                debug!(%peer, "COMPRESS DEFLATE started");
            }
            Reply::ReadTakeThis(id, refusal) => {
                // In flight from its command line on, not from its last
                // octet: a CHECK of it on another connection meanwhile is
                // told 431, not to send it too.
                let in_flight = match refusal {
                    None => session.shared.ingest.receiving(id.as_str()),
                    Some(_) => None,
                };
                // While the rest of the article is on its way, the burst's
                // articles before it go to the writer and their answers go
                // out as they come, rather than wait for its last octet
                // (a large article on a slow link takes a while).
                let mut reader = BlockReader::new(max_article);
                let block = loop {
                    if let Some(block) = reader.take_buffered(&mut conn) {
                        break block;
                    }
                    // What has arrived already is taken without waiting
                    // (`read_more` is cancel safe).
                    if let Some(Ok(true)) = conn.read_more().now_or_never() {
                        continue;
                    }
                    hand_over(&session.shared.ingest, staged, false).await;
                    if let Err(why) = guarded(conn.flush(), idle, &mut shutdown).await {
                        farewell(&mut conn, peer, why, true).await;
                        return;
                    }
                    if pending.is_empty() {
                        match guarded(conn.finish_block(reader), idle, &mut shutdown).await {
                            Ok(block) => break block,
                            Err(why) => {
                                info!(%peer, "TAKETHIS abandoned before its final dot");
                                farewell(&mut conn, peer, why, false).await;
                                return;
                            }
                        }
                    }
                    // Reads on meanwhile; the end of input settles what is
                    // owed and closes.
                    let ingest = &session.shared.ingest;
                    let woke =
                        wait_front_or_input(&mut pending, &mut conn, true, false, ingest).await;
                    if woke
                        .and_then(|()| send_ready(&mut pending, &mut conn))
                        .is_err()
                    {
                        let _ = tokio::time::timeout(FAREWELL, conn.close()).await;
                        return;
                    }
                };
                match refusal {
                    None => {
                        let (owed, submission) = session.takethis(&id, block, in_flight).await;
                        pending.push_back(owed);
                        staged.extend(submission);
                    }
                    Some(refusal) => pending.push_back(Pending::Ready(refusal)),
                }
            }
        }
    }
}

fn closes(reply: &Reply) -> bool {
    matches!(reply, Reply::Send(r) if r.closes())
}

/// Sends a continuation prompt (340, 335), then reads the article block.
/// On failure: why, and whether it happened while writing the prompt.
async fn prompt_and_read<S: AsyncRead + AsyncWrite + Unpin + QuickAck>(
    conn: &mut Connection<S>,
    prompt: &Response,
    max_article: usize,
    idle: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<crate::wire::connection::Block, (Interrupted, bool)> {
    conn.send(prompt);
    guarded(conn.flush(), idle, shutdown)
        .await
        .map_err(|why| (why, true))?;
    guarded(conn.read_block(max_article), idle, shutdown)
        .await
        .map_err(|why| (why, false))
}
