//! Transit: articles offered by peers (RFC 3977 §6.3.2 IHAVE, RFC 4644
//! MODE STREAM / CHECK / TAKETHIS). Only connections from a configured
//! peer's addresses get here (see `admit`).
//!
//! Dedup is by message-id against history (stored, refused and expired
//! ids alike) and against ids being received on other connections right now.
//! A relayed article is checked (RFC 5536 syntax, Path loop, the peer's
//! accept pattern), gets our identity prepended to its Path, and is
//! acknowledged (235/239) only once committed.

use tokio::sync::oneshot;

use super::Session;
use crate::article;
use crate::ingest::{InFlight, IngestError, Submission};
use crate::store::StoreError;
use crate::store::writer::{Origin, Outcome};
use crate::wire::codes;
use crate::wire::connection::Block;
use crate::wire::response::Response;
use crate::wire::types::MessageId;

/// An answer a session owes, in command order.
pub(super) enum Pending {
    Ready(Response),
    /// A TAKETHIS whose article is with the writer.
    Committing {
        msgid: String,
        answer: oneshot::Receiver<Result<Outcome, IngestError>>,
        _in_flight: InFlight,
    },
    /// A CHECK whose history look-up is in a batch.
    Checking {
        msgid: String,
        answer: oneshot::Receiver<Option<bool>>,
    },
}

/// What an owed answer turned out to be: a response, or a response after
/// which the connection must close (storage failed).
pub(super) type Answer = Result<Response, Response>;

fn check_answer(msgid: &str, seen: Result<Option<bool>, oneshot::error::RecvError>) -> Response {
    match seen {
        Ok(Some(false)) => Response::new(codes::CHECK_SEND, msgid.to_owned()),
        Ok(Some(true)) => Response::new(codes::CHECK_NOT_WANTED, msgid.to_owned()),
        // The look-up failed: ask the peer to offer it again later.
        _ => Response::new(codes::CHECK_LATER, msgid.to_owned()),
    }
}

fn storage_failed() -> Response {
    Response::new(
        codes::SERVICE_DISCONTINUED,
        "Storage failure; offer the remaining articles again later",
    )
}

impl Pending {
    /// The answer, if it is ready now.
    pub(super) fn try_answer(&mut self) -> Option<Answer> {
        match self {
            Pending::Ready(r) => Some(Ok(std::mem::replace(r, Response::new(0, "")))),
            Pending::Committing { msgid, answer, .. } => match answer.try_recv() {
                Ok(result) => Some(takethis_answer(msgid, Ok(result)).ok_or_else(storage_failed)),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(Err(storage_failed())),
            },
            Pending::Checking { msgid, answer } => match answer.try_recv() {
                Ok(seen) => Some(Ok(check_answer(msgid, Ok(seen)))),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => {
                    Some(Ok(Response::new(codes::CHECK_LATER, msgid.clone())))
                }
            },
        }
    }

    /// Waits for the answer. Cancel safe: dropped before it completes, the
    /// answer stays to be had.
    pub(super) async fn answer(&mut self) -> Answer {
        match self {
            Pending::Ready(r) => Ok(std::mem::replace(r, Response::new(0, ""))),
            Pending::Committing { msgid, answer, .. } => {
                let result = answer.await;
                takethis_answer(msgid, result).ok_or_else(storage_failed)
            }
            Pending::Checking { msgid, answer } => {
                let seen = answer.await;
                Ok(check_answer(msgid, seen))
            }
        }
    }
}

/// The answer to a TAKETHIS once the writer has spoken. `None`: the
/// article could not be stored for a reason that is not the article's
/// fault; RFC 4644 offers no "try later" for TAKETHIS, so the session says
/// 400 and closes, and the peer offers it again on its next connection.
pub(super) fn takethis_answer(
    msgid: &str,
    result: Result<Result<Outcome, IngestError>, oneshot::error::RecvError>,
) -> Option<Response> {
    match result {
        Ok(Ok(Outcome::Stored { .. })) => Some(Response::new(codes::TAKETHIS_OK, msgid.to_owned())),
        Ok(Ok(Outcome::Duplicate)) => Some(Response::new(
            codes::TAKETHIS_REJECTED,
            format!("{msgid} duplicate"),
        )),
        Ok(Ok(Outcome::NoGroups)) => Some(Response::new(
            codes::TAKETHIS_REJECTED,
            format!("{msgid} no wanted newsgroups"),
        )),
        Ok(Ok(Outcome::Refused(reason))) => Some(Response::new(
            codes::TAKETHIS_REJECTED,
            format!("{msgid} {reason}"),
        )),
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Why a relayed article is refused, and whether its message-id is to be
/// remembered as refused (offered to us again, it is turned down at once:
/// 438 / 435). Only a refusal that any copy from any peer would get is
/// remembered; one that depends on the peer that sent it is not, or one
/// peer's refusal would keep the article from every other.
struct Refused {
    reason: String,
    remember: bool,
}

impl Refused {
    fn remembered(reason: String) -> Refused {
        Refused {
            reason,
            remember: true,
        }
    }
}

impl Session {
    fn path_identity(&self) -> &str {
        self.config().server.path_identity.as_str()
    }

    /// CHECK (RFC 4644 §2.4): 238 send it, 431 later, 438 not wanted. An id
    /// the filter has never seen is wanted at once; otherwise the history
    /// look-up joins a batch and the answer is owed until it is done.
    pub(super) async fn check(&self, id: &MessageId) -> Pending {
        let msgid = id.to_string();
        if self.shared.ingest.is_in_flight(id.as_str()) {
            return Pending::Ready(Response::new(codes::CHECK_LATER, msgid));
        }
        if self.shared.ingest.surely_new(id.as_str()) {
            return Pending::Ready(Response::new(codes::CHECK_SEND, msgid));
        }
        let answer = self.shared.seen.ask(id.as_str()).await;
        Pending::Checking { msgid, answer }
    }

    /// IHAVE, first half (RFC 3977 §6.3.2): 335 with the id marked in
    /// flight, or 435 / 436 at once.
    pub(super) async fn ihave_offer(
        &self,
        id: &MessageId,
    ) -> Result<Result<InFlight, Response>, StoreError> {
        if !self.shared.ingest.surely_new(id.as_str()) && self.store().seen(id).await? {
            return Ok(Err(Response::new(codes::NOT_WANTED, "Duplicate")));
        }
        match self.shared.ingest.receiving(id.as_str()) {
            Some(guard) => Ok(Ok(guard)),
            None => Ok(Err(Response::new(
                codes::TRANSFER_LATER,
                "Being received on another connection, try again later",
            ))),
        }
    }

    /// Checks a relayed article; why it is refused on failure.
    async fn relay_checks(
        &self,
        id: &MessageId,
        block: &Block,
    ) -> Result<article::Prepared, Refused> {
        let limit = self.config().limits.max_article_size;
        if block.too_big {
            return Err(Refused::remembered(format!(
                "too large ({} octets, limit {limit})",
                block.size
            )));
        }
        let prepared = article::prepare_relay(&block.data, Some(id), self.path_identity())
            .map_err(|e| Refused {
                // The offered id is not this article's: the article with
                // that id may yet come, right, from another peer.
                remember: !matches!(e, article::ArticleError::IdMismatch),
                reason: e.to_string(),
            })?;
        self.check_header_count(&prepared)
            .map_err(Refused::remembered)?;
        let wanted = self.peer_config.as_ref().is_some_and(|p| {
            p.accept
                .wants(prepared.newsgroups.iter().map(|g| g.as_str()))
        });
        if !wanted {
            // This peer's limit, not the article's: another peer may
            // offer it and have it taken.
            return Err(Refused {
                reason: "no newsgroups accepted from this peer".to_owned(),
                remember: false,
            });
        }
        Ok(prepared)
    }

    /// IHAVE, second half: the article arrived; store it and answer
    /// 235 / 436 / 437.
    pub(super) async fn ihave_article(
        &self,
        id: &MessageId,
        block: Block,
        _in_flight: InFlight,
    ) -> Response {
        let prepared = match self.relay_checks(id, &block).await {
            Ok(p) => p,
            Err(refused) => {
                let reason = refused.reason;
                tracing::info!(peer = %self.peer, %id, "IHAVE refused: {reason}");
                if refused.remember {
                    self.shared.ingest.reject(id.as_str()).await;
                }
                return Response::new(codes::TRANSFER_REJECTED, format!("Rejected: {reason}"));
            }
        };
        match self.shared.ingest.submit(prepared, Origin::Relay).await {
            Ok(Outcome::Stored { .. }) => {
                Response::new(codes::TRANSFERRED_OK, "Article transferred OK")
            }
            Ok(Outcome::Duplicate) => {
                Response::new(codes::TRANSFER_REJECTED, "Rejected: duplicate")
            }
            Ok(Outcome::NoGroups) => {
                Response::new(codes::TRANSFER_REJECTED, "Rejected: no wanted newsgroups")
            }
            Ok(Outcome::Refused(reason)) => {
                Response::new(codes::TRANSFER_REJECTED, format!("Rejected: {reason}"))
            }
            Err(e) => Response::new(
                codes::TRANSFER_LATER,
                format!("Transfer failed, try again later: {e}"),
            ),
        }
    }

    /// TAKETHIS (RFC 4644 §2.5): the article has been read and checked;
    /// `in_flight` is its mark as being received, taken when its command
    /// came (`None`: another connection had it).
    /// It is not submitted yet: the session stages it with the rest of the
    /// burst and submits them together (see `run`), so they share one
    /// commit. Returns the owed answer and, when the article is to be
    /// stored, its submission.
    pub(super) async fn takethis(
        &self,
        id: &MessageId,
        block: Block,
        in_flight: Option<InFlight>,
    ) -> (Pending, Option<Submission>) {
        let text = id.to_string();
        let Some(guard) = in_flight else {
            let refusal = Response::new(
                codes::TAKETHIS_REJECTED,
                format!("{text} being received on another connection"),
            );
            return (Pending::Ready(refusal), None);
        };
        let article = match self.relay_checks(id, &block).await {
            Ok(p) => p,
            Err(refused) => {
                let reason = refused.reason;
                tracing::info!(peer = %self.peer, %id, "TAKETHIS refused: {reason}");
                if refused.remember {
                    self.shared.ingest.reject(id.as_str()).await;
                }
                let refusal = Response::new(codes::TAKETHIS_REJECTED, format!("{text} {reason}"));
                return (Pending::Ready(refusal), None);
            }
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending::Committing {
            msgid: text,
            answer,
            _in_flight: guard,
        };
        let submission = Submission {
            article,
            origin: Origin::Relay,
            reply,
        };
        (pending, Some(submission))
    }
}
