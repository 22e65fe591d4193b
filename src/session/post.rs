//! POST (RFC 3977 §6.3.1) with injection (RFC 5537 §3.4): check the
//! article, fill in what the client left out, check its groups, hand it to
//! the writer, and answer 240 only once it is committed.

use super::Session;
use crate::article::{self, InjectionContext};
use crate::ingest::IngestError;
use crate::store::writer::{Origin, Outcome};
use crate::wire::codes;
use crate::wire::connection::Block;
use crate::wire::response::Response;

fn refuse(reason: impl std::fmt::Display) -> Response {
    Response::new(codes::POSTING_FAILED, format!("Posting failed: {reason}"))
}

impl Session {
    pub(super) async fn post(&mut self, block: Block) -> Response {
        let response = self.try_post(block).await;
        if response.code != codes::POSTED_OK {
            // Every refusal leaves a line for the operator (limits, rules,
            // bad articles alike).
            tracing::info!(peer = %self.peer, user = ?self.user, "post refused: {}", response.text);
        }
        response
    }

    async fn try_post(&mut self, block: Block) -> Response {
        let limit = self.config().limits.max_article_size;
        if block.too_big {
            return refuse(format!(
                "article too large ({} octets, limit {limit})",
                block.size
            ));
        }
        let host = self.peer.ip().to_string();
        let server = &self.config().server;
        let cx = InjectionContext {
            path_identity: server.path_identity.as_str(),
            domain: server.domain.as_str(),
            now: chrono::Utc::now(),
            posting_host: &host,
            user: self.user.as_deref(),
            cancel_secrets: (self.config().cancels.lock_posts)
                .then_some(&self.shared.cancel_secrets),
        };
        let prepared = match article::prepare_post(&block.data, &cx) {
            Ok(p) => p,
            Err(e) => return refuse(e),
        };

        if let Err(reason) = self.check_header_count(&prepared) {
            return refuse(reason);
        }
        // The access rule: which groups, and how often.
        if let Some(g) = prepared
            .newsgroups
            .iter()
            .find(|g| !self.may_post_to(g.as_str()))
        {
            return refuse(format!("posting to {g} is not allowed for you"));
        }
        if !self
            .shared
            .usage
            .post(&self.usage_key(), self.rule.posts_per_minute)
        {
            return refuse("posting rate limit reached; try again in a minute");
        }
        let msgid = prepared.message_id.clone();
        match self.shared.ingest.submit(prepared, Origin::Post).await {
            Ok(Outcome::Stored { article_id, .. }) => {
                tracing::info!(peer = %self.peer, %msgid, article_id, "posted");
                Response::new(codes::POSTED_OK, format!("Article received {msgid}"))
            }
            Ok(Outcome::Duplicate) => refuse(format!("duplicate message-id {msgid}")),
            Ok(Outcome::NoGroups) => refuse("none of its newsgroups exists here"),
            Ok(Outcome::Refused(reason)) => refuse(reason),
            Err(IngestError::Closed) => refuse("server is shutting down"),
            Err(e) => refuse(e),
        }
    }
}
