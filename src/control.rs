//! Group control messages (RFC 5537 §5.2, §5.3, §5.5: newgroup, rmgroup,
//! checkgroups), carried out after they are stored, as `[[control]]`
//! rules say: INN's controlchan and control.ctl. Cancels are not here: the
//! writer carries them out in the transaction that stores them.
//!
//! The writer files control messages in `control.<verb>` or `control`; a
//! task reads those groups past a cursor kept in the database (so each
//! message is looked at once, across restarts), whenever the article log
//! moves on.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::article;
use crate::config::{ControlAction, ControlKind};
use crate::session::Shared;
use crate::store::{Store, StoreError};
use crate::wire::types::{GroupName, Range};

/// The groups group control messages are filed in.
const GROUPS: [&str; 4] = [
    "control",
    "control.newgroup",
    "control.rmgroup",
    "control.checkgroups",
];

/// Messages read per query.
const CHUNK: i64 = 100;

/// The least time between two looks at the control groups: under a flood
/// the log moves on every batch.
const PAUSE: Duration = Duration::from_millis(200);

/// A group control message, as far as we act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `newgroup name [moderated]`, with the description from the body's
    /// "For your newsgroups file:" section (RFC 5537 §5.2.1).
    Newgroup {
        group: GroupName,
        moderated: bool,
        description: String,
    },
    /// `rmgroup name`.
    Rmgroup { group: GroupName },
    /// `checkgroups`: logged, never carried out.
    Checkgroups,
}

impl Request {
    fn kind(&self) -> ControlKind {
        match self {
            Request::Newgroup { .. } => ControlKind::Newgroup,
            Request::Rmgroup { .. } => ControlKind::Rmgroup,
            Request::Checkgroups => ControlKind::Checkgroups,
        }
    }

    fn group(&self) -> &str {
        match self {
            Request::Newgroup { group, .. } | Request::Rmgroup { group } => group.as_str(),
            Request::Checkgroups => "",
        }
    }
}

/// What a stored article asks, if it is a group control message we know;
/// `Err` says why one is not acted on. Pure.
pub fn request(article: &[u8]) -> Option<Result<Request, String>> {
    let control = article::header_value(article, "Control")?;
    let mut words = control.split_whitespace();
    let verb = words.next()?.to_ascii_lowercase();
    let name = words.next();
    let group = || {
        let name = name.ok_or_else(|| format!("{verb} names no group"))?;
        // Where control messages are filed is for the operator alone (INN's
        // control.ctl drops these too).
        if name == "control" || name.starts_with("control.") {
            return Err(format!("{verb} {name}: control groups change only by hand"));
        }
        GroupName::try_from(name).map_err(|e| format!("{verb} {name}: {e}"))
    };
    let request = match verb.as_str() {
        "newgroup" => group().map(|group| Request::Newgroup {
            moderated: words.next() == Some("moderated"),
            description: description(article, group.as_str()),
            group,
        }),
        "rmgroup" => group().map(|group| Request::Rmgroup { group }),
        "checkgroups" => Ok(Request::Checkgroups),
        _ => return None,
    };
    // RFC 5537 §5.2: these must be approved.
    if request.is_ok() && article::header_value(article, "Approved").is_none() {
        return Some(Err(format!("{verb} without an Approved header")));
    }
    Some(request)
}

/// The description a newgroup gives its group: the line of its body that
/// follows "For your newsgroups file:" and starts with the group's name
/// (`name<TAB>description`); empty when there is none.
fn description(article: &[u8], group: &str) -> String {
    let (_, body) = article::split(article);
    let body = String::from_utf8_lossy(body);
    let mut lines = body.lines();
    if !lines.any(|l| l.trim().eq_ignore_ascii_case("For your newsgroups file:")) {
        return String::new();
    }
    lines
        .find_map(|l| {
            let rest = l.strip_prefix(group)?;
            rest.starts_with(char::is_whitespace)
                .then(|| rest.trim().to_owned())
        })
        .unwrap_or_default()
}

/// The sender of a message: the address of Sender, else of From, in lower
/// case.
fn sender(article: &[u8]) -> String {
    let field = article::header_value(article, "Sender")
        .or_else(|| article::header_value(article, "From"))
        .unwrap_or_default();
    let address = match (field.rfind('<'), field.rfind('>')) {
        (Some(l), Some(r)) if l < r => &field[l + 1..r],
        _ => field.split_whitespace().next().unwrap_or(""),
    };
    address.to_ascii_lowercase()
}

/// Reads the control groups past their cursors and acts on what comes,
/// again each time `written` (how far the overview is written) moves,
/// until it closes or the task is aborted (shutdown).
pub async fn run(shared: Arc<Shared>, mut written: watch::Receiver<i64>) {
    loop {
        let failed = match pass(&shared).await {
            Ok(()) => false,
            Err(e) => {
                warn!("control messages: {e}; trying again in {RETRY:?}");
                true
            }
        };
        tokio::time::sleep(PAUSE).await;
        tokio::select! {
            changed = written.changed() => if changed.is_err() {
                return;
            },
            // A message that failed (the database busy, say) is tried
            // again even when no article comes.
            () = tokio::time::sleep(RETRY), if failed => {}
        }
    }
}

/// How soon a pass that failed is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// A control group without a cursor starts at its newest message: what
/// was stored before this server read control messages is history, not a
/// request to carry out now. Called at start, before any article can come
/// (one that came first would be taken for history).
pub async fn start_cursors(store: &Store) -> Result<(), StoreError> {
    for name in GROUPS {
        if let Some(g) = store.group(name).await?
            && store.control_cursor(name).await?.is_none()
        {
            store.set_control_cursor(name, g.high).await?;
        }
    }
    Ok(())
}

/// One look at every control group.
async fn pass(shared: &Shared) -> Result<(), StoreError> {
    let store = &shared.store;
    for name in GROUPS {
        // The overview as written: the pass runs again when it moves, and
        // waiting for the writer's queue would have it written every pass.
        let Some(g) = store.group_as_written(name).await? else {
            continue;
        };
        let mut after = store.control_cursor(name).await?.unwrap_or(0);
        while after < g.high {
            let range = Range {
                low: after + 1,
                high: Some(g.high),
            };
            let mut messages = store
                .articles_in_range_as_written(g.id, range, CHUNK)
                .await?;
            messages.sort_by_key(|(n, _)| *n);
            let Some(&(last, _)) = messages.last() else {
                // The rest expired or was withdrawn.
                store.set_control_cursor(name, g.high).await?;
                break;
            };
            // The cursor moves past each message that changed something,
            // so a restart does not do it twice, and past the rest a
            // chunk at a time: where `control` also takes the cancels,
            // most of what it holds asks nothing of us.
            for (number, bytes) in &messages {
                if act(shared, bytes).await? {
                    store.set_control_cursor(name, *number).await?;
                }
            }
            store.set_control_cursor(name, last).await?;
            after = last;
        }
    }
    Ok(())
}

/// Decides on one stored control message and carries it out; whether it
/// was carried out.
async fn act(shared: &Shared, bytes: &[u8]) -> Result<bool, StoreError> {
    let Some(request) = request(bytes) else {
        return Ok(false);
    };
    let id = article::header_value(bytes, "Message-ID").unwrap_or_default();
    let request = match request {
        Ok(r) => r,
        Err(why) => {
            info!("control message {id}: not carried out: {why}");
            return Ok(false);
        }
    };
    let from = sender(bytes);
    let config = shared.config();
    let rule = (config.control.iter()).find(|r| r.matches(request.kind(), &from, request.group()));
    let what = match &request {
        Request::Newgroup {
            group, moderated, ..
        } => format!(
            "newgroup {group}{} from {from}",
            if *moderated { " moderated" } else { "" }
        ),
        Request::Rmgroup { group } => format!("rmgroup {group} from {from}"),
        Request::Checkgroups => format!("checkgroups from {from}"),
    };
    match rule.map(|r| r.action) {
        None => info!("control message {id}: {what}: no [[control]] rule for it, not carried out"),
        Some(ControlAction::Drop) => debug!("control message {id}: {what}: dropped"),
        Some(ControlAction::Log) => info!("control message {id}: {what}: logged, not carried out"),
        Some(ControlAction::Doit) => {
            let done = carry_out(shared, &request, &from).await?;
            info!("control message {id}: {what}: {done}");
            return Ok(true);
        }
    }
    Ok(false)
}

async fn carry_out(
    shared: &Shared,
    request: &Request,
    from: &str,
) -> Result<&'static str, StoreError> {
    let store = &shared.store;
    Ok(match request {
        Request::Newgroup {
            group,
            moderated,
            description,
        } => {
            let status = if *moderated { 'm' } else { 'y' };
            match store.group(group.as_str()).await? {
                None => {
                    store.add_group(group, status, description, from).await?;
                    "group created"
                }
                Some(g) => {
                    let description = (!description.is_empty()).then_some(description.as_str());
                    store
                        .set_group(group.as_str(), Some(status), description)
                        .await?;
                    if g.status == status {
                        "group exists"
                    } else {
                        "group status changed"
                    }
                }
            }
        }
        Request::Rmgroup { group } => {
            if store.group(group.as_str()).await?.is_none() {
                "no such group here"
            } else {
                let until = Utc::now().timestamp() + shared.config().storage.remember_secs();
                store.remove_group(group.as_str(), until).await?;
                "group removed"
            }
        }
        Request::Checkgroups => "checkgroups is never carried out here",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(head: &str, body: &str) -> Vec<u8> {
        format!("{head}\r\n{body}").into_bytes()
    }

    #[test]
    fn newgroup_and_rmgroup_are_read_with_their_description() {
        let a = article(
            "From: Group Admin <Admin@Example.com>\r\nApproved: admin@example.com\r\n\
             Control: newgroup corp.news moderated\r\n",
            "corp.news is for news.\r\n\r\nFor your newsgroups file:\r\n\
             corp.newsy\tNot this one\r\ncorp.news\tCompany news (Moderated)\r\n",
        );
        assert_eq!(
            request(&a),
            Some(Ok(Request::Newgroup {
                group: GroupName::try_from("corp.news").expect("name"),
                moderated: true,
                description: "Company news (Moderated)".to_owned(),
            }))
        );
        assert_eq!(sender(&a), "admin@example.com");
        let a = article(
            "From: x@y.z\r\nSender: Real <r@y.z>\r\nApproved: x\r\nControl: RMGROUP corp.old\r\n",
            "",
        );
        assert_eq!(
            request(&a),
            Some(Ok(Request::Rmgroup {
                group: GroupName::try_from("corp.old").expect("name")
            }))
        );
        assert_eq!(sender(&a), "r@y.z");
    }

    #[test]
    fn what_is_not_a_group_control_message_asks_nothing() {
        let a = article(
            "From: x@y.z\r\nApproved: x\r\nControl: cancel <a@b>\r\n",
            "",
        );
        assert_eq!(request(&a), None);
        assert_eq!(request(&article("From: x@y.z\r\n", "")), None);
        let unapproved = article("From: x@y.z\r\nControl: newgroup a.b\r\n", "");
        assert!(matches!(request(&unapproved), Some(Err(e)) if e.contains("Approved")));
        let nameless = article("From: x@y.z\r\nApproved: x\r\nControl: newgroup\r\n", "");
        assert!(matches!(request(&nameless), Some(Err(_))));
        let bad = article(
            "From: x@y.z\r\nApproved: x\r\nControl: rmgroup a..b\r\n",
            "",
        );
        assert!(matches!(request(&bad), Some(Err(_))));
        for name in ["control", "control.cancel"] {
            let ours = article(
                &format!("From: x@y.z\r\nApproved: x\r\nControl: rmgroup {name}\r\n"),
                "",
            );
            assert!(
                matches!(request(&ours), Some(Err(e)) if e.contains("by hand")),
                "{name}"
            );
        }
    }
}
