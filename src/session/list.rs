//! LIST and its keywords (RFC 3977 §7.6, §8.4, §8.6; RFC 6048).

use super::Session;
use crate::store::{GroupInfo, StoreError};
use crate::wire::codes;
use crate::wire::command::ListKind;
use crate::wire::response::Response;
use crate::wire::wildmat::Wildmat;

/// The overview fields we store, in order (RFC 3977 §8.4). The sixth and
/// seventh are the metadata items `:bytes` and `:lines`, named `Bytes:` and
/// `Lines:` as §8.4 allows for compatibility, and as INN names them: slrn
/// compares the first seven names with the header names of the old
/// overview format, and on any other answer stops using OVER and fetches
/// every article's head instead, one command per article (and shows no line
/// counts). Clients that know RFC 3977 take either spelling.
pub const OVERVIEW_FMT: &str = "Subject:\r\nFrom:\r\nDate:\r\nMessage-ID:\r\nReferences:\r\n\
                                Bytes:\r\nLines:\r\nXref:full\r\n";

impl Session {
    pub(super) async fn list(&mut self, kind: ListKind) -> Result<Response, StoreError> {
        let needs_groups = matches!(
            kind,
            ListKind::Active(_)
                | ListKind::ActiveTimes(_)
                | ListKind::Newsgroups(_)
                | ListKind::Counts(_)
        );
        let groups = if needs_groups {
            self.readable(self.store().groups().await?)
        } else {
            Vec::new()
        };
        let each_group = |w: Option<&Wildmat>, f: &dyn Fn(&GroupInfo) -> String| -> Vec<u8> {
            let mut body = String::new();
            for g in groups
                .iter()
                .filter(|g| w.is_none_or(|w| w.matches(&g.name)))
            {
                body.push_str(&f(g));
            }
            body.into_bytes()
        };
        let body = match kind {
            ListKind::Active(w) => each_group(w.as_ref(), &|g| {
                format!("{} {} {} {}\r\n", g.name, g.high, g.low, g.status)
            }),
            ListKind::ActiveTimes(w) => each_group(w.as_ref(), &|g| {
                let creator = if g.creator.is_empty() {
                    "unknown"
                } else {
                    g.creator.as_str()
                };
                format!("{} {} {}\r\n", g.name, g.created, creator)
            }),
            ListKind::Newsgroups(w) => each_group(w.as_ref(), &description_line),
            ListKind::Counts(w) => each_group(w.as_ref(), &|g| {
                format!(
                    "{} {} {} {} {}\r\n",
                    g.name, g.high, g.low, g.count, g.status
                )
            }),
            ListKind::OverviewFmt => OVERVIEW_FMT.as_bytes().to_vec(),
            // Any header can be asked for (":"), plus the two metadata items.
            ListKind::Headers(_) => b":\r\n:bytes\r\n:lines\r\n".to_vec(),
            // We keep no distribution patterns or distributions yet: the
            // lists are valid and empty.
            ListKind::DistribPats | ListKind::Distributions => Vec::new(),
            // RFC 6048 §5: `pattern:address`, as INN's moderators file.
            ListKind::Moderators => (self.config().moderation.moderators.iter())
                .map(|m| format!("{}:{}\r\n", m.groups.0.as_str(), m.address))
                .collect::<String>()
                .into_bytes(),
            ListKind::Motd => {
                let motd = &self.config().server.motd;
                if motd.is_empty() {
                    return Ok(Response::new(
                        codes::FEATURE_NOT_SUPPORTED,
                        "No message of the day",
                    ));
                }
                let mut text = motd.replace("\r\n", "\n").replace('\n', "\r\n");
                if !text.ends_with("\r\n") {
                    text.push_str("\r\n");
                }
                text.into_bytes()
            }
            ListKind::Subscriptions(w) => {
                let mut body = String::new();
                for name in &self.config().server.subscriptions {
                    if w.as_ref().is_none_or(|w| w.matches(name)) {
                        body.push_str(name);
                        body.push_str("\r\n");
                    }
                }
                body.into_bytes()
            }
        };
        Ok(Response::with_body(
            codes::LIST_FOLLOWS,
            "Information follows",
            body,
        ))
    }

    /// XGTITLE [wildmat] (RFC 2980 §2.7): the lines of LIST NEWSGROUPS
    /// under code 282, for the groups the wildmat matches or, without one,
    /// for the selected group (412 when there is none), as INN answers.
    /// Older newsreaders (knews, trn) ask for group descriptions this way.
    pub(super) async fn xgtitle(
        &mut self,
        wildmat: Option<Wildmat>,
    ) -> Result<Response, StoreError> {
        let selected = self.group.as_ref().map(|g| g.name.as_str());
        if wildmat.is_none() && selected.is_none() {
            return Ok(Response::new(
                codes::NO_GROUP_SELECTED,
                "No newsgroup selected",
            ));
        }
        let wanted = |name: &str| match &wildmat {
            Some(w) => w.matches(name),
            None => selected == Some(name),
        };
        let body: String = (self.readable(self.store().groups().await?).iter())
            .filter(|g| wanted(&g.name))
            .map(description_line)
            .collect();
        Ok(Response::with_body(
            codes::XGTITLE_FOLLOWS,
            "Descriptions follow",
            body.into_bytes(),
        ))
    }
}

/// A group's line in LIST NEWSGROUPS and XGTITLE: name, tab, description.
fn description_line(g: &GroupInfo) -> String {
    format!("{}\t{}\r\n", g.name, g.description)
}
