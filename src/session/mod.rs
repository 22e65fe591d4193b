//! The per-connection state machine (RFC 3977 §3–§5): read a command line,
//! parse it, admit it, run its handler, send the response.
//!
//! Handlers return a `Response` and never touch the socket; only POST needs
//! the connection's help (it reads an article block after its 340), which
//! `Reply::ReadArticle` asks the loop for.

mod list;
mod post;
mod reader;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::ingest::Ingest;
use crate::store::{GroupInfo, Store, StoreError};
use crate::wire::codes;
use crate::wire::command::Command;
use crate::wire::connection::{Connection, Line};
use crate::wire::parse::{ParseError, parse_command};
use crate::wire::response::Response;

/// What every session shares: configuration, the store, the ingest handle.
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Store,
    pub ingest: Ingest,
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
    peer: SocketAddr,
    group: Option<Selected>,
    /// The current article number (RFC 3977 §6.1): only set with a group.
    current: Option<u64>,
}

/// What the connection loop must do after a command.
enum Reply {
    Send(Response),
    /// Send the 340 prompt, read an article block, hand it to `post`.
    ReadArticle(Response),
}

impl Session {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Session {
        Session {
            shared,
            peer,
            group: None,
            current: None,
        }
    }

    fn config(&self) -> &Config {
        &self.shared.config
    }

    fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The greeting (RFC 3977 §5.1).
    pub fn greeting(&self) -> Response {
        let c = self.config();
        if c.server.posting {
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

    /// Admission: may this command run now? Today every reader command is
    /// open to every client; transit commands (IHAVE, CHECK, TAKETHIS,
    /// MODE STREAM), authentication and TLS are not offered yet, so they are
    /// refused with 502 before any handler runs. (Authentication, access
    /// rules and transit peers will narrow this, in this one function.)
    fn admit(&self, command: &Command) -> Result<(), Response> {
        match command {
            Command::Ihave(_) | Command::Check(_) | Command::TakeThis(_) | Command::ModeStream => {
                Err(Response::new(
                    codes::NOT_PERMITTED,
                    "Transit service not permitted on this connection",
                ))
            }
            Command::AuthinfoUser(_) | Command::AuthinfoPass(_) | Command::AuthinfoSasl { .. } => {
                Err(Response::new(
                    codes::NOT_PERMITTED,
                    "Authentication is not offered by this server",
                ))
            }
            Command::StartTls => Err(Response::new(
                codes::NOT_PERMITTED,
                "TLS is not offered by this server",
            )),
            Command::Post if !self.config().server.posting => Err(Response::new(
                codes::POSTING_NOT_PERMITTED,
                "Posting not permitted",
            )),
            _ => Ok(()),
        }
    }

    async fn dispatch(&mut self, command: Command) -> Result<Reply, StoreError> {
        if let Err(refusal) = self.admit(&command) {
            return Ok(Reply::Send(refusal));
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
                return Ok(Reply::ReadArticle(Response::new(
                    codes::SEND_ARTICLE_POST,
                    "Send article to be posted. End with <CR-LF>.<CR-LF>",
                )));
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
            // Refused by admit().
            Command::Ihave(_)
            | Command::Check(_)
            | Command::TakeThis(_)
            | Command::ModeStream
            | Command::AuthinfoUser(_)
            | Command::AuthinfoPass(_)
            | Command::AuthinfoSasl { .. }
            | Command::StartTls => Response::new(codes::NOT_PERMITTED, "Not permitted"),
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
        if self.config().server.posting {
            body.push_str("POST\r\n");
        }
        body.push_str("NEWNEWS\r\n");
        body.push_str("HDR\r\n");
        body.push_str("OVER MSGID\r\n");
        body.push_str(
            "LIST ACTIVE ACTIVE.TIMES COUNTS DISTRIB.PATS HEADERS MOTD NEWSGROUPS OVERVIEW.FMT SUBSCRIPTIONS\r\n",
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
BODY [message-id|number]\r\n\
CAPABILITIES [keyword]\r\n\
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
STAT [message-id|number]\r\n\
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
async fn farewell<S: AsyncRead + AsyncWrite + Unpin>(
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

/// Drives one connection until QUIT, end of stream, idle timeout, an I/O
/// error or shutdown.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: Connection<S>,
    mut session: Session,
    mut shutdown: watch::Receiver<bool>,
) {
    let idle = Duration::from_secs(session.config().limits.idle_timeout_secs);
    let max_output = session.config().limits.max_output_buffer;
    let max_article = session.config().limits.max_article_size;
    let peer = session.peer;
    conn.send(&session.greeting());
    loop {
        // Flush once per burst: only when no complete command is waiting.
        if (!conn.has_buffered_line() || conn.pending_output() >= max_output)
            && let Err(why) = guarded(conn.flush(), idle, &mut shutdown).await
        {
            farewell(&mut conn, peer, why, true).await;
            return;
        }
        let line = match guarded(conn.read_line(), idle, &mut shutdown).await {
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
                conn.send(&Response::new(codes::SYNTAX_ERROR, "Command line too long"));
                continue;
            }
        };
        let command = match parse_command(&line) {
            Ok(c) => c,
            Err(ParseError::Unknown) => {
                conn.send(&Response::new(codes::UNKNOWN_COMMAND, "Unknown command"));
                continue;
            }
            Err(ParseError::Syntax(reason)) => {
                conn.send(&Response::new(
                    codes::SYNTAX_ERROR,
                    format!("Syntax error: {reason}"),
                ));
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
        match reply {
            Reply::Send(response) => {
                conn.send(&response);
                if response.closes() {
                    let _ = tokio::time::timeout(FAREWELL, conn.close()).await;
                    return;
                }
            }
            Reply::ReadArticle(prompt) => {
                conn.send(&prompt);
                if let Err(why) = guarded(conn.flush(), idle, &mut shutdown).await {
                    farewell(&mut conn, peer, why, true).await;
                    return;
                }
                // Nothing is stored from a half-sent article.
                let block = match guarded(conn.read_block(max_article), idle, &mut shutdown).await {
                    Ok(b) => b,
                    Err(why) => {
                        info!(%peer, "POST abandoned before its final dot");
                        farewell(&mut conn, peer, why, false).await;
                        return;
                    }
                };
                let response = session.post(block).await;
                conn.send(&response);
            }
        }
    }
}
