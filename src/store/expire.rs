//! Expiry: articles past their groups' retention are removed, and
//! message-ids past their remember time are forgotten (INN's expire and
//! its /remember/ line). Runs beside live ingest in small transactions, so
//! the writer never waits long for the lock.
//!
//! A group's articles are taken from the front of its number range while
//! they are old enough; numbers are assigned in arrival order, so the
//! expired ones are a prefix. An article cross-posted to several groups is
//! deleted only when its last group lets it go: its overview line's Xref
//! names the others.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::Row;

use super::{HistoryLevel, Result, Store, keep_log_head};
use crate::config::Config;

/// Overview rows taken per transaction: a few milliseconds of lock.
const CHUNK: i64 = 200;

/// The least pause between two chunks (see `expire`).
const PAUSE: Duration = Duration::from_millis(20);

/// History rows forgotten per statement.
const FORGET_CHUNK: i64 = 1000;

/// What one expiry run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExpireReport {
    /// Articles deleted (in none of their groups any more).
    pub articles: u64,
    /// Their size in bytes.
    pub bytes: u64,
    /// Article numbers taken out of groups (a cross-post counts once per
    /// group).
    pub numbers: u64,
    /// Groups that lost at least one article number.
    pub groups: u64,
    /// Message-ids forgotten: refused or expired longer ago than they are
    /// remembered, so a peer may offer them again.
    pub forgotten: u64,
}

impl Store {
    /// One expiry run by the configuration's `[expire]` rules and
    /// `storage.remember_days`, as of `now`: what the server runs every
    /// `expire.interval_secs`, and `tidings expire`.
    pub async fn expire_by(&self, config: &Config, now: i64) -> Result<ExpireReport> {
        let remember = config.storage.remember_secs();
        self.expire(|g| config.expire.keep_secs(g), now, remember)
            .await
    }

    /// Expires as of `now` (Unix seconds): each group keeps its articles
    /// for `keep_secs(group)` seconds (`None`: for ever). The message-ids
    /// of deleted articles are remembered `remember_secs` more.
    pub async fn expire(
        &self,
        keep_secs: impl Fn(&str) -> Option<i64>,
        now: i64,
        remember_secs: i64,
    ) -> Result<ExpireReport> {
        // The writer's queued rows first (`overview`): expiry goes by them.
        self.visibility.wait().await;
        let (groups, ids) = self.groups_by_id().await?;
        let mut report = ExpireReport::default();
        for (group_id, name) in &groups {
            let Some(keep) = keep_secs(name) else {
                continue;
            };
            let cutoff = now.saturating_sub(keep);
            let mut taken = 0;
            loop {
                let started = Instant::now();
                let (n, more) = self
                    .expire_chunk(*group_id, cutoff, &ids, now + remember_secs, &mut report)
                    .await?;
                taken += n;
                if !more {
                    break;
                }
                pause_after(started).await;
            }
            if taken > 0 {
                report.groups += 1;
                report.numbers += taken;
            }
        }
        report.forgotten = self.forget(now).await?;
        // Offers deferred by a peer (431) of articles that are gone.
        sqlx::query("DELETE FROM peer_retry WHERE article_id NOT IN (SELECT id FROM articles)")
            .execute(&self.pool)
            .await?;
        Ok(report)
    }

    /// What `expire_by` would do as of `now`, from reads alone: nothing is
    /// changed (`tidings expire --dry-run`).
    pub async fn expire_preview_by(&self, config: &Config, now: i64) -> Result<ExpireReport> {
        self.expire_preview(|g| config.expire.keep_secs(g), now)
            .await
    }

    /// What `expire` would report as of `now`, changing nothing: each
    /// group's expired front (the numbers before its first article young
    /// enough to stay), and the articles that no other group keeps.
    pub async fn expire_preview(
        &self,
        keep_secs: impl Fn(&str) -> Option<i64>,
        now: i64,
    ) -> Result<ExpireReport> {
        // The writer's queued rows first (`overview`): expiry goes by them.
        self.visibility.wait().await;
        let (groups, ids) = self.groups_by_id().await?;
        let mut report = ExpireReport::default();
        // Group id -> the last number of its expired front.
        let mut fronts: HashMap<i64, i64> = HashMap::new();
        for (group_id, name) in &groups {
            let Some(keep) = keep_secs(name) else {
                continue;
            };
            let (numbers, last): (i64, Option<i64>) = sqlx::query_as(
                "SELECT count(*), max(number) FROM overview WHERE group_id = ?1 AND number < \
                 coalesce((SELECT min(number) FROM overview \
                           WHERE group_id = ?1 AND arrived >= ?2), 9223372036854775807)",
            )
            .bind(group_id)
            .bind(now.saturating_sub(keep))
            .fetch_one(&self.pool)
            .await?;
            if let Some(last) = last {
                fronts.insert(*group_id, last);
                report.groups += 1;
                report.numbers += numbers.max(0) as u64;
            }
        }
        // An article goes when none of its groups keeps a number for it,
        // as `numbered_elsewhere` decides; each is counted once.
        let mut counted = std::collections::HashSet::new();
        let mut conn = self.pool.acquire().await?;
        for (&group_id, &last) in &fronts {
            let rows: Vec<(i64, String, i64)> = sqlx::query_as(&format!(
                "SELECT o.article_id, o.line, {} FROM overview o \
                 JOIN articles a ON a.id = o.article_id \
                 WHERE o.group_id = ?1 AND o.number <= ?2",
                super::bodies::size_sql("a")
            ))
            .bind(group_id)
            .bind(last)
            .fetch_all(&mut *conn)
            .await?;
            for (article_id, line, bytes) in rows {
                if counted.contains(&article_id) {
                    continue;
                }
                let mut kept = false;
                for (group, number) in overview_xref(&line) {
                    let Some(&other) = ids.get(&group) else {
                        continue;
                    };
                    if other == group_id || fronts.get(&other).is_some_and(|&l| number as i64 <= l)
                    {
                        continue;
                    }
                    if has_number(&mut conn, other, number).await? {
                        kept = true;
                        break;
                    }
                }
                if !kept {
                    counted.insert(article_id);
                    report.articles += 1;
                    report.bytes += bytes.max(0) as u64;
                }
            }
        }
        let forgotten: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM history_all WHERE remember_until IS NOT NULL AND remember_until < ?1",
        )
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        report.forgotten = forgotten.max(0) as u64;
        Ok(report)
    }

    /// Every group as (id, name), and the ids by name.
    async fn groups_by_id(&self) -> Result<(Vec<(i64, String)>, HashMap<String, i64>)> {
        let groups: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM groups")
            .fetch_all(&self.pool)
            .await?;
        let ids = groups.iter().map(|(id, n)| (n.clone(), *id)).collect();
        Ok((groups, ids))
    }

    /// Takes up to `CHUNK` expired numbers from the front of one group in
    /// one transaction. Returns how many, and whether there may be more.
    async fn expire_chunk(
        &self,
        group_id: i64,
        cutoff: i64,
        group_ids: &HashMap<String, i64>,
        remember_until: i64,
        report: &mut ExpireReport,
    ) -> Result<(u64, bool)> {
        // IMMEDIATE: this reads, then writes; a deferred transaction could
        // find the writer's commit in between and fail.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(
            "SELECT number, article_id, arrived, line FROM overview \
             WHERE group_id = ?1 ORDER BY number LIMIT ?2",
        )
        .bind(group_id)
        .bind(CHUNK)
        .fetch_all(&mut *tx)
        .await?;
        let mut last = None;
        let mut doomed = Vec::new();
        for row in &rows {
            if row.get::<i64, _>("arrived") >= cutoff {
                break;
            }
            let number: i64 = row.get("number");
            last = Some(number);
            let line: String = row.get("line");
            doomed.push((row.get::<i64, _>("article_id"), line));
        }
        let Some(last) = last else {
            tx.rollback().await?;
            return Ok((0, false));
        };
        keep_log_head(&mut tx).await?;
        sqlx::query("DELETE FROM overview WHERE group_id = ?1 AND number <= ?2")
            .bind(group_id)
            .bind(last)
            .execute(&mut *tx)
            .await?;
        // Articles numbered in another group still live on there.
        let mut gone = Vec::with_capacity(doomed.len());
        for (article_id, line) in &doomed {
            if !numbered_elsewhere(&mut tx, line, group_id, group_ids).await? {
                gone.push(article_id.to_string());
            }
        }
        if !gone.is_empty() {
            // One statement each for the chunk: the ids as a JSON array.
            let ids = format!("[{}]", gone.join(","));
            for sql in super::remember_removed("SELECT value FROM json_each(?1)", "?2") {
                sqlx::query(&sql)
                    .bind(&ids)
                    .bind(remember_until)
                    .execute(&mut *tx)
                    .await?;
            }
            let sizes: Vec<i64> = sqlx::query_scalar(&format!(
                "DELETE FROM articles WHERE id IN (SELECT value FROM json_each(?1)) \
                 RETURNING {}",
                super::bodies::size_sql("")
            ))
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            report.articles += sizes.len() as u64;
            report.bytes += sizes.iter().map(|&b| b.max(0) as u64).sum::<u64>();
        }
        let taken = doomed.len() as u64;
        // An emptied group has low = high + 1 (RFC 3977 §6.1.1.2).
        sqlx::query(
            "UPDATE groups SET count = max(count - ?2, 0), \
             low = coalesce((SELECT min(number) FROM overview WHERE group_id = ?1), high + 1) \
             WHERE id = ?1",
        )
        .bind(group_id)
        .bind(taken as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // A whole chunk taken: the front may go on expiring.
        Ok((taken, taken as i64 == CHUNK))
    }

    /// Forgets message-ids whose remember time has passed; how many.
    async fn forget(&self, now: i64) -> Result<u64> {
        let mut forgotten = 0;
        for level in HistoryLevel::WALK {
            let table = level.table();
            loop {
                let started = Instant::now();
                let n = sqlx::query(&format!(
                    "DELETE FROM {table} WHERE msgid IN (SELECT msgid FROM {table} \
                     WHERE remember_until IS NOT NULL AND remember_until < ?1 LIMIT ?2)"
                ))
                .bind(now)
                .bind(FORGET_CHUNK)
                .execute(&self.pool)
                .await?
                .rows_affected();
                forgotten += n;
                if n < FORGET_CHUNK as u64 {
                    break;
                }
                pause_after(started).await;
            }
        }
        Ok(forgotten)
    }
}

/// Leaves the write lock to the writer after a chunk begun at `started`,
/// long enough for its busy handler's retries (after 1, 2, 5, 10 ms ...)
/// to find it free: expiry holds the lock at most a third of the time.
async fn pause_after(started: Instant) {
    tokio::time::sleep((started.elapsed() * 2).max(PAUSE)).await;
}

/// Whether the article of an overview `line` of `group_id` still has a
/// number in another group (its Xref names them).
async fn numbered_elsewhere(
    conn: &mut sqlx::SqliteConnection,
    line: &str,
    group_id: i64,
    group_ids: &HashMap<String, i64>,
) -> Result<bool> {
    for (group, number) in overview_xref(line) {
        if let Some(&other) = group_ids.get(&group)
            && other != group_id
            && has_number(conn, other, number).await?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `group_id` still has article `number`.
async fn has_number(conn: &mut sqlx::SqliteConnection, group_id: i64, number: u64) -> Result<bool> {
    let found = sqlx::query("SELECT 1 FROM overview WHERE group_id = ?1 AND number = ?2")
        .bind(group_id)
        .bind(number as i64)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// The (group, number) entries of the Xref field of an overview line:
/// always the last field (`Xref: host group:number ...`), which the writer
/// builds; an earlier field saying "Xref:" is the poster's text.
fn overview_xref(line: &str) -> Vec<(String, u64)> {
    line.rsplit('\t')
        .next()
        .and_then(|field| field.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("Xref"))
        .map(|(_, value)| crate::article::xref_pairs(value))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::overview_xref;

    #[test]
    fn the_xref_of_an_overview_line_names_every_group() {
        let line = "Subject\tFrom\tDate\t<a@b>\t\t1234\t10\tXref: news.example a.b:3 c.d:17";
        assert_eq!(
            overview_xref(line),
            [("a.b".to_owned(), 3), ("c.d".to_owned(), 17)]
        );
        assert!(overview_xref("Subject\tFrom\tDate\t<a@b>\t\t1\t1\t").is_empty());
        let spoof = "Xref: x e.f:1\tFrom\tDate\t<a@b>\t\t1\t1\tXref: news.example a.b:3";
        assert_eq!(overview_xref(spoof), [("a.b".to_owned(), 3)]);
    }
}
