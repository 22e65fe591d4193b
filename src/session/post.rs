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
        // Whatever becomes of this article, the recommendation was for it.
        let offered_id = self.offered_id.take();
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
            offered_id: offered_id.as_ref(),
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
        // A moderated group's post without Approved goes to its moderator
        // (RFC 5537 §3.5.1), not into the store.
        if article::header_value(&prepared.head, "Approved").is_none()
            && let Some(group) = self.first_moderated(&prepared).await
        {
            return self.mail_to_moderator(&prepared, &group).await;
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

/// How long the mail program may take.
const MTA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Session {
    /// The first of the article's newsgroups that is moderated here.
    async fn first_moderated(&self, prepared: &article::Prepared) -> Option<String> {
        for group in &prepared.newsgroups {
            if let Ok(Some(g)) = self.shared.store.group(group.as_str()).await
                && g.status == 'm'
            {
                return Some(g.name);
            }
        }
        None
    }

    /// Mails `prepared` to the moderator of `group` with the configured
    /// mail program, as INN's nnrpd does; 240 once the program took it.
    async fn mail_to_moderator(&self, prepared: &article::Prepared, group: &str) -> Response {
        let config = self.config();
        let Some(address) = config.moderation.moderator_of(group) else {
            return refuse(format!(
                "{group} is moderated and this server has no moderator address for it"
            ));
        };
        let Some((program, args)) = config.moderation.mta.split_first() else {
            return refuse("no mail program to reach the moderator (moderation.mta)");
        };
        // A mail for the moderator: To, then the article as it is before
        // injection (RFC 5537 §3.5 forwards it before Injection-Date and
        // Injection-Info are added; our Path says POSTED too), so that the
        // moderator can post it again, approved. Local mail's line ends.
        let mut mail = format!("To: {address}\n").into_bytes();
        for f in article::lenient_fields(&prepared.head) {
            if !(f.is("Path") || f.is("Injection-Date") || f.is("Injection-Info")) {
                mail.extend(f.line.iter().filter(|&&b| b != b'\r'));
            }
        }
        mail.push(b'\n');
        mail.extend(prepared.body.iter().filter(|&&b| b != b'\r'));
        let sent = tokio::time::timeout(MTA_TIMEOUT, async {
            use tokio::io::AsyncWriteExt;
            let mut child = tokio::process::Command::new(program)
                .args(args)
                .arg(&address)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(&mail).await?;
            }
            child.wait_with_output().await
        })
        .await;
        let msgid = &prepared.message_id;
        match sent {
            Ok(Ok(out)) if out.status.success() => {
                tracing::info!(peer = %self.peer, %msgid, group, %address, "mailed to the moderator");
                Response::new(
                    codes::POSTED_OK,
                    format!("Article {msgid} mailed to the moderator of {group}"),
                )
            }
            Ok(Ok(out)) => {
                let why = String::from_utf8_lossy(&out.stderr);
                tracing::warn!(%msgid, "{program} for {address}: {}: {}", out.status, why.trim());
                refuse(format!(
                    "cannot mail the moderator of {group}: {}",
                    out.status
                ))
            }
            Ok(Err(e)) => {
                tracing::warn!(%msgid, "{program} for {address}: {e}");
                refuse(format!("cannot mail the moderator of {group}: {e}"))
            }
            Err(_) => refuse(format!("cannot mail the moderator of {group}: timed out")),
        }
    }
}
