//! The writer's transaction: one batch of checked articles in, numbers
//! assigned, rows written, one commit (DESIGN.md "Ingest: one writer, group
//! commit"). Synchronous: it runs on the ingest thread, never on the runtime.

use std::collections::HashMap;

use super::LAST_ARTICLE_ID;
use super::raw::{Db, RawError, Step, Stmt};
use crate::article::Prepared;

/// What became of one article of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Committed: its log id and its number in each group we carry.
    Stored {
        article_id: i64,
        numbers: Vec<(String, u64)>,
    },
    /// Its message-id is already in history (stored, refused or expired).
    Duplicate,
    /// None of its newsgroups is carried here.
    NoGroups,
    /// A posting rule refused it (POST only): the reason, for 441.
    Refused(String),
}

/// Where an article comes from: posts are checked against each group's
/// status (RFC 3977 §7.6.3: `n` takes no posts, `m` only approved ones) in
/// the same transaction that numbers them; relayed articles are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Post,
    Relay,
}

/// The statements of the hot loop, prepared once for the writer's lifetime.
pub struct BatchWriter<'db> {
    db: &'db Db,
    find_history: Stmt<'db>,
    find_group: Stmt<'db>,
    insert_article: Stmt<'db>,
    insert_overview: Stmt<'db>,
    insert_history: Stmt<'db>,
    update_group: Stmt<'db>,
    remember: Stmt<'db>,
    last_id: i64,
    path_identity: String,
}

/// A group touched by the batch: where its numbering stands.
struct Slot {
    id: i64,
    status: char,
    high: u64,
    first_new: u64,
    added: u64,
}

impl<'db> BatchWriter<'db> {
    pub fn new(db: &'db Db, path_identity: &str) -> Result<BatchWriter<'db>, RawError> {
        let mut last = db.prepare(&format!("SELECT {LAST_ARTICLE_ID}"))?;
        let last_id = match last.step()? {
            Step::Row => last.column_i64(0),
            Step::Done => 0,
        };
        drop(last);
        Ok(BatchWriter {
            db,
            find_history: db.prepare("SELECT status FROM history WHERE msgid = ?1")?,
            find_group: db.prepare("SELECT id, high, status FROM groups WHERE name = ?1")?,
            insert_article: db.prepare(
                "INSERT INTO articles (id, arrived, msgid, bytes) VALUES (?1, ?2, ?3, ?4)",
            )?,
            insert_overview: db.prepare(
                "INSERT INTO overview (group_id, number, article_id, arrived, line) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            insert_history: db.prepare(
                "INSERT INTO history (msgid, article_id, status, remember_until) \
                 VALUES (?1, ?2, 0, NULL)",
            )?,
            update_group: db.prepare(
                "UPDATE groups SET high = ?2, count = count + ?3, \
                 low = CASE WHEN count = 0 THEN ?4 ELSE low END WHERE id = ?1",
            )?,
            remember: db.prepare(
                "INSERT INTO history (msgid, article_id, status, remember_until) \
                 VALUES (?1, NULL, 1, ?2) ON CONFLICT (msgid) DO NOTHING",
            )?,
            last_id,
            path_identity: path_identity.to_owned(),
        })
    }

    /// Writes `batch` in one transaction stamped `now` (Unix seconds) and
    /// commits. On error nothing of the batch is stored.
    ///
    /// `rejected` are message-ids refused before they reached the writer
    /// (malformed, unwanted): they are remembered until `remember_until` so
    /// a peer that offers them again is told 438/435 at once. Relayed
    /// articles that carry none of our groups are remembered the same way.
    pub fn write(
        &mut self,
        batch: &[(&Prepared, Origin)],
        rejected: &[&str],
        now: i64,
        remember_until: i64,
    ) -> Result<Vec<Outcome>, RawError> {
        let saved_last_id = self.last_id;
        self.db.exec("BEGIN IMMEDIATE")?;
        let result = self
            .write_rows(batch, now, remember_until)
            .and_then(|outcomes| {
                for id in rejected {
                    self.remember_rejected(id, remember_until)?;
                }
                Ok(outcomes)
            })
            .and_then(|outcomes| {
                self.db.exec("COMMIT")?;
                Ok(outcomes)
            });
        if result.is_err() {
            // Best effort: if COMMIT failed the transaction may already be gone.
            let _ = self.db.exec("ROLLBACK");
            self.last_id = saved_last_id;
        }
        result
    }

    fn remember_rejected(&mut self, msgid: &str, until: i64) -> Result<(), RawError> {
        self.remember.bind_text(1, msgid)?;
        self.remember.bind_i64(2, until)?;
        self.remember.execute()
    }

    fn write_rows(
        &mut self,
        batch: &[(&Prepared, Origin)],
        now: i64,
        remember_until: i64,
    ) -> Result<Vec<Outcome>, RawError> {
        let mut slots: HashMap<String, Option<Slot>> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for &(article, origin) in batch {
            let msgid = article.message_id.as_str();
            self.find_history.bind_text(1, msgid)?;
            let seen = self.find_history.step();
            self.find_history.reset();
            if seen? == Step::Row {
                outcomes.push(Outcome::Duplicate);
                continue;
            }

            for group in &article.newsgroups {
                let name = group.as_str();
                if !slots.contains_key(name) {
                    let slot = self.load_group(name)?;
                    slots.insert(name.to_owned(), slot);
                }
            }
            if origin == Origin::Post
                && let Some(reason) = posting_refusal(article, &slots)
            {
                outcomes.push(Outcome::Refused(reason));
                continue;
            }

            let mut numbers = Vec::with_capacity(article.newsgroups.len());
            for group in &article.newsgroups {
                let name = group.as_str();
                if let Some(Some(slot)) = slots.get_mut(name) {
                    slot.high += 1;
                    slot.added += 1;
                    if slot.first_new == 0 {
                        slot.first_new = slot.high;
                    }
                    numbers.push((name.to_owned(), slot.high, slot.id));
                }
            }
            if numbers.is_empty() {
                if origin == Origin::Relay {
                    self.remember_rejected(msgid, remember_until)?;
                }
                outcomes.push(Outcome::NoGroups);
                continue;
            }

            let mut xref = String::with_capacity(self.path_identity.len() + 32 * numbers.len());
            xref.push_str(&self.path_identity);
            for (name, number, _) in &numbers {
                xref.push(' ');
                xref.push_str(name);
                xref.push(':');
                xref.push_str(&number.to_string());
            }
            let (bytes, line) = article.finish(&xref);

            self.last_id += 1;
            let id = self.last_id;
            let s = &mut self.insert_article;
            s.bind_i64(1, id)?;
            s.bind_i64(2, now)?;
            s.bind_text(3, msgid)?;
            s.bind_blob(4, &bytes)?;
            s.execute()?;

            for (_, number, group_id) in &numbers {
                let s = &mut self.insert_overview;
                s.bind_i64(1, *group_id)?;
                s.bind_i64(2, *number as i64)?;
                s.bind_i64(3, id)?;
                s.bind_i64(4, now)?;
                s.bind_text(5, &line)?;
                s.execute()?;
            }

            let s = &mut self.insert_history;
            s.bind_text(1, msgid)?;
            s.bind_i64(2, id)?;
            s.execute()?;

            outcomes.push(Outcome::Stored {
                article_id: id,
                numbers: numbers.into_iter().map(|(n, num, _)| (n, num)).collect(),
            });
        }

        for slot in slots.values().flatten() {
            if slot.added == 0 {
                continue;
            }
            let s = &mut self.update_group;
            s.bind_i64(1, slot.id)?;
            s.bind_i64(2, slot.high as i64)?;
            s.bind_i64(3, slot.added as i64)?;
            s.bind_i64(4, slot.first_new as i64)?;
            s.execute()?;
        }
        Ok(outcomes)
    }

    fn load_group(&mut self, name: &str) -> Result<Option<Slot>, RawError> {
        let s = &mut self.find_group;
        s.bind_text(1, name)?;
        let found = match s.step() {
            Ok(Step::Row) => Ok(Some(Slot {
                id: s.column_i64(0),
                high: s.column_i64(1).max(0) as u64,
                status: s.column_text(2).chars().next().unwrap_or('y'),
                first_new: 0,
                added: 0,
            })),
            Ok(Step::Done) => Ok(None),
            Err(e) => Err(e),
        };
        s.reset();
        found
    }

    /// The id of the last article written (the head of the article log).
    pub fn last_id(&self) -> i64 {
        self.last_id
    }
}

/// Why a post may not go into its groups, if it may not: every group must
/// exist (a typo is the poster's to fix, not ours to drop silently), take
/// posts, and, when moderated, carry an Approved header (we have no
/// moderator addresses to mail it to).
fn posting_refusal(article: &Prepared, slots: &HashMap<String, Option<Slot>>) -> Option<String> {
    for group in &article.newsgroups {
        let name = group.as_str();
        match slots.get(name) {
            Some(Some(slot)) => match slot.status {
                'n' => return Some(format!("posting to {name} is not allowed")),
                'm' if crate::article::header_value(&article.head, "Approved").is_none() => {
                    return Some(format!(
                        "{name} is moderated and this server has no moderator address for it"
                    ));
                }
                _ => {}
            },
            _ => return Some(format!("no such newsgroup {name}")),
        }
    }
    None
}
