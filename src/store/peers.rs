//! Feed state: each peer's cursor into the article log, its counters, and
//! the articles it asked us to offer again later (DESIGN.md "Flooding").

use sqlx::Row;

use super::{LAST_ARTICLE_ID, Result, Store, StoreError, bodies};

/// One peer's durable feed state.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PeerState {
    pub name: String,
    pub cursor: i64,
    pub paused: bool,
    pub offered: i64,
    pub accepted: i64,
    pub refused: i64,
    pub rejected: i64,
    pub deferred: i64,
    pub rate: f64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub connected_at: Option<i64>,
}

/// Counters to add after a round of offers.
#[derive(Debug, Clone, Copy, Default)]
pub struct FeedCounts {
    pub offered: i64,
    pub accepted: i64,
    pub refused: i64,
    pub rejected: i64,
    pub deferred: i64,
}

/// The outcome of a feeder's round, to record.
#[derive(Debug, Clone, Copy)]
pub struct FeedRound<'a> {
    /// The cursor the round started from, as the feeder read it.
    pub from: i64,
    /// The new cursor (it never moves back). Neither it nor the retries
    /// are saved if the cursor is no longer `from`: an operator moved it
    /// (`tidings peer reset-cursor`) while the round ran.
    pub cursor: i64,
    pub counts: FeedCounts,
    /// Accepted articles per second in the round.
    pub rate: f64,
    /// Articles to offer again at `retry_at` (431/436).
    pub retry: &'a [i64],
    pub retry_at: i64,
    /// Articles whose retry is done.
    pub retried: &'a [i64],
}

/// A peer's backlog, as `peer_backlog_wanted` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub articles: i64,
    pub bytes: i64,
    /// Only what the peer's feeder would send is counted; otherwise every
    /// article after its cursor (more than the limit asked for).
    pub exact: bool,
}

/// An article as a feeder needs it.
#[derive(Debug, Clone)]
pub struct LogArticle {
    pub id: i64,
    pub msgid: String,
    /// The article; only its head when its body, kept apart
    /// (`store::bodies`), was not read: the feeder's peer does not want
    /// it, or it is `unreadable`.
    pub bytes: Vec<u8>,
    /// The whole article's size.
    pub size: usize,
    /// Its body could not be read (logged): it is not offered.
    pub unreadable: bool,
    /// The feeder's `Wants` took it already: its body is kept apart, and
    /// was read for it. (Otherwise the feeder's filter has not been asked,
    /// or said no.)
    pub wanted: bool,
}

/// Whether a feeder's peer gets an article, from its head (or all of it)
/// and its whole size: only those have their bodies read.
pub type Wants<'a> = &'a (dyn Fn(&[u8], usize) -> bool + Sync);

impl Store {
    /// Turns rows (id, message-id, bytes and `bodies::columns`) into
    /// articles one at a time, each row dropped once copied, so a round is
    /// not held twice at its peak; then reads the bodies kept in segments
    /// of those `wants` takes. An article whose body cannot be read is
    /// marked, not an error: one damaged body must not stop a feed.
    async fn collect_articles(
        &self,
        mut rows: futures_util::stream::BoxStream<'_, sqlx::Result<sqlx::sqlite::SqliteRow>>,
        wants: Wants<'_>,
    ) -> Result<Vec<LogArticle>> {
        use futures_util::TryStreamExt;
        let mut articles = Vec::new();
        let mut places = Vec::new();
        while let Some(r) = rows.try_next().await? {
            let bytes: Vec<u8> = r.get(2);
            let place = super::body_place(&r, 3);
            let size = bytes.len() + place.map_or(0, |p| p.len);
            let place = place.filter(|_| wants(&bytes, size));
            places.push(place);
            articles.push(LogArticle {
                id: r.get(0),
                msgid: r.get(1),
                bytes,
                size,
                unreadable: false,
                wanted: place.is_some(),
            });
        }
        drop(rows);
        if places.iter().all(Option::is_none) {
            return Ok(articles);
        }
        let bodies = self.bodies().clone();
        tokio::task::spawn_blocking(move || {
            for (a, place) in articles.iter_mut().zip(&places) {
                if let Some(p) = place
                    && let Err(e) = bodies.read_into(p, &mut a.bytes)
                {
                    tracing::error!(article = a.id, msgid = %a.msgid, "{e}: not fed");
                    a.unreadable = true;
                }
            }
            articles
        })
        .await
        .map_err(|e| StoreError::BodyTask(e.to_string()))
    }
}

fn state_from_row(r: &sqlx::sqlite::SqliteRow) -> PeerState {
    PeerState {
        name: r.get("name"),
        cursor: r.get("cursor"),
        paused: r.get::<i64, _>("paused") != 0,
        offered: r.get("offered"),
        accepted: r.get("accepted"),
        refused: r.get("refused"),
        rejected: r.get("rejected"),
        deferred: r.get("deferred"),
        rate: r.get("rate"),
        last_error: r.get("last_error"),
        last_error_at: r.get("last_error_at"),
        connected_at: r.get("connected_at"),
    }
}

impl Store {
    /// The state of peer `name`, creating it on first sight with its cursor
    /// at the head of the log: a new peer gets what arrives from now on, not
    /// the whole history (as a new INN feed does).
    pub async fn peer_state(&self, name: &str) -> Result<PeerState> {
        sqlx::query(&format!(
            "INSERT INTO peers (name, cursor) VALUES (?1, {LAST_ARTICLE_ID}) \
             ON CONFLICT (name) DO NOTHING"
        ))
        .bind(name)
        .execute(&self.pool)
        .await?;
        self.known_peer_state(name).await
    }

    /// The state of a peer already in the database: a read only, for the
    /// feeder's every round (`peer_state` would take the write lock each
    /// time, in the writer's way).
    pub async fn known_peer_state(&self, name: &str) -> Result<PeerState> {
        let row = sqlx::query("SELECT * FROM peers WHERE name = ?1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(state_from_row(&row))
    }

    /// Every peer known to the database, by name.
    pub async fn peer_states(&self) -> Result<Vec<PeerState>> {
        let rows = sqlx::query("SELECT * FROM peers ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(state_from_row).collect())
    }

    /// Articles after `cursor` in log order, at most `limit`.
    pub async fn articles_after(
        &self,
        cursor: i64,
        limit: i64,
        max_bytes: i64,
        wants: Wants<'_>,
    ) -> Result<Vec<LogArticle>> {
        // The last id of the prefix that fits `max_bytes` is found from the
        // articles' lengths alone (SQLite does not read a blob to measure
        // it), so no more than that is ever read into memory.
        let sql = format!(
            "SELECT id, msgid, bytes, {} FROM articles WHERE id > ?1 AND id <= ( \
                 SELECT max(id) FROM ( \
                     SELECT id, sum({}) OVER ( \
                         ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING \
                     ) AS before \
                     FROM articles WHERE id > ?1 ORDER BY id LIMIT ?2 \
                 ) WHERE coalesce(before, 0) < ?3 \
             ) ORDER BY id",
            bodies::columns(""),
            bodies::size_sql("")
        );
        let rows = sqlx::query(&sql)
            .bind(cursor)
            .bind(limit)
            .bind(max_bytes)
            .fetch(&self.pool);
        self.collect_articles(rows, wants).await
    }

    /// Articles of `peer` due for another offer (their retry time passed),
    /// at most `limit`. Articles deleted since are skipped and forgotten.
    pub async fn due_retries(
        &self,
        peer: &str,
        now: i64,
        limit: i64,
        max_bytes: i64,
        wants: Wants<'_>,
    ) -> Result<Vec<LogArticle>> {
        // Forget retries of articles deleted since; a write, so only when
        // there are retries at all (this runs every round of a feeder).
        let waiting: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM peer_retry WHERE peer = ?1 LIMIT 1")
                .bind(peer)
                .fetch_optional(&self.pool)
                .await?;
        if waiting.is_some() {
            sqlx::query(
                "DELETE FROM peer_retry WHERE peer = ?1 \
                 AND article_id NOT IN (SELECT id FROM articles)",
            )
            .bind(peer)
            .execute(&self.pool)
            .await?;
        }
        // Bounded in bytes as `articles_after` is.
        let sql = format!(
            "SELECT a.id, a.msgid, a.bytes, {} FROM peer_retry r \
             JOIN articles a ON a.id = r.article_id \
             WHERE r.peer = ?1 AND r.retry_at <= ?2 AND r.article_id <= ( \
                 SELECT max(id) FROM ( \
                     SELECT q.article_id AS id, sum({}) OVER ( \
                         ORDER BY q.article_id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING \
                     ) AS before \
                     FROM peer_retry q JOIN articles b ON b.id = q.article_id \
                     WHERE q.peer = ?1 AND q.retry_at <= ?2 ORDER BY q.article_id LIMIT ?3 \
                 ) WHERE coalesce(before, 0) < ?4 \
             ) ORDER BY r.article_id",
            bodies::columns("a"),
            bodies::size_sql("b")
        );
        let rows = sqlx::query(&sql)
            .bind(peer)
            .bind(now)
            .bind(limit)
            .bind(max_bytes)
            .fetch(&self.pool);
        self.collect_articles(rows, wants).await
    }

    /// When the next retry of `peer` falls due, if any is waiting.
    pub async fn next_retry_at(&self, peer: &str) -> Result<Option<i64>> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT min(retry_at) FROM peer_retry WHERE peer = ?1")
                .bind(peer)
                .fetch_one(&self.pool)
                .await?;
        Ok(at)
    }

    /// Records the outcome of a round of `peer`'s feed in one transaction.
    pub async fn save_feed_round(&self, peer: &str, round: FeedRound<'_>) -> Result<()> {
        let FeedRound {
            from,
            cursor,
            counts,
            rate,
            retry,
            retry_at,
            retried,
        } = round;
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE peers SET cursor = max(cursor, ?3) WHERE name = ?1 AND cursor = ?2",
        )
        .bind(peer)
        .bind(from)
        .bind(cursor)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 0;
        sqlx::query(
            "UPDATE peers SET offered = offered + ?2, \
             accepted = accepted + ?3, refused = refused + ?4, rejected = rejected + ?5, \
             deferred = deferred + ?6, rate = ?7 WHERE name = ?1",
        )
        .bind(peer)
        .bind(counts.offered)
        .bind(counts.accepted)
        .bind(counts.refused)
        .bind(counts.rejected)
        .bind(counts.deferred)
        .bind(rate)
        .execute(&mut *tx)
        .await?;
        if moved {
            // The reset dropped the retries too; the round's are of the
            // log as it was before it.
            tx.commit().await?;
            return Ok(());
        }
        for id in retried {
            sqlx::query("DELETE FROM peer_retry WHERE peer = ?1 AND article_id = ?2")
                .bind(peer)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for id in retry {
            sqlx::query(
                "INSERT INTO peer_retry (peer, article_id, retry_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (peer, article_id) DO UPDATE SET retry_at = ?3, \
                 attempts = attempts + 1",
            )
            .bind(peer)
            .bind(id)
            .bind(retry_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that the feeder connected (`Some(now)`) or lost its peer.
    pub async fn set_peer_connected(&self, peer: &str, at: Option<i64>) -> Result<()> {
        // Not connected, nothing is being accepted: no rate.
        sqlx::query(
            "UPDATE peers SET connected_at = ?2, rate = iif(?2 IS NULL, 0, rate) WHERE name = ?1",
        )
        .bind(peer)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records every feed as not connected: at start, before any feeder
    /// runs, whatever the server before this one left behind.
    pub async fn clear_peer_connections(&self) -> Result<()> {
        sqlx::query(
            "UPDATE peers SET connected_at = NULL, rate = 0 WHERE connected_at IS NOT NULL",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_peer_error(&self, peer: &str, error: &str, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE peers SET last_error = ?2, last_error_at = ?3, connected_at = NULL, \
             rate = 0 WHERE name = ?1",
        )
        .bind(peer)
        .bind(error)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that a connected feed has nothing to send: its rate, of
    /// the last round until then, is 0 now.
    pub async fn set_peer_idle(&self, peer: &str) -> Result<()> {
        sqlx::query("UPDATE peers SET rate = 0 WHERE name = ?1 AND rate != 0")
            .bind(peer)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Pauses or resumes a feed; the feeder sees it within a second or two.
    /// Returns false when no such peer is known.
    pub async fn set_peer_paused(&self, peer: &str, paused: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE peers SET paused = ?2 WHERE name = ?1")
            .bind(peer)
            .bind(paused)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Moves a peer's cursor: to `to`, or to the head of the log. Pending
    /// retries are dropped. Returns false when no such peer is known.
    pub async fn reset_peer_cursor(&self, peer: &str, to: Option<i64>) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(&format!(
            "UPDATE peers SET cursor = coalesce(?2, {LAST_ARTICLE_ID}) WHERE name = ?1"
        ))
        .bind(peer)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM peer_retry WHERE peer = ?1")
            .bind(peer)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether a peer's feed is paused.
    pub async fn peer_paused(&self, peer: &str) -> Result<bool> {
        let p: Option<i64> = sqlx::query_scalar("SELECT paused FROM peers WHERE name = ?1")
            .bind(peer)
            .fetch_optional(&self.pool)
            .await?;
        Ok(p.unwrap_or(0) != 0)
    }

    /// A peer's backlog: the articles after its cursor and those waiting
    /// for a retry, and their bytes.
    pub async fn peer_backlog(&self, peer: &str, cursor: i64) -> Result<(i64, i64)> {
        let (after, after_bytes) = self.log_after(cursor).await?;
        let (retries, retry_bytes) = self.retry_backlog(peer).await?;
        Ok((after + retries, after_bytes + retry_bytes))
    }

    /// A peer's backlog counted as its feeder would send it: of the
    /// articles after `cursor`, those `wants` takes (its patterns, size,
    /// distributions, Path), and those waiting for a retry, with their
    /// bytes. Past `limit` articles after the cursor, every one is
    /// counted (`exact` is false): each would be read (its head) to
    /// decide, and a status is not worth reading a whole database for.
    pub async fn peer_backlog_wanted(
        &self,
        peer: &str,
        cursor: i64,
        wants: Wants<'_>,
        limit: i64,
    ) -> Result<Backlog> {
        use futures_util::TryStreamExt;
        let (after, after_bytes) = self.log_after(cursor).await?;
        let (retries, retry_bytes) = self.retry_backlog(peer).await?;
        if after > limit {
            return Ok(Backlog {
                articles: after + retries,
                bytes: after_bytes + retry_bytes,
                exact: false,
            });
        }
        // The head only: up to and including the blank line after it.
        let sql = format!(
            "SELECT substr(bytes, 1, iif(instr(bytes, X'0D0A0D0A') > 0, \
                 instr(bytes, X'0D0A0D0A') + 3, length(bytes))), {} \
             FROM articles WHERE id > ?1 ORDER BY id",
            bodies::size_sql("")
        );
        let mut rows = sqlx::query(&sql).bind(cursor).fetch(&self.pool);
        let (mut count, mut bytes) = (0i64, 0i64);
        while let Some(r) = rows.try_next().await? {
            let head: Vec<u8> = r.get(0);
            let size: i64 = r.get(1);
            if wants(&head, usize::try_from(size).unwrap_or(usize::MAX)) {
                count += 1;
                bytes += size;
            }
        }
        Ok(Backlog {
            articles: count + retries,
            bytes: bytes + retry_bytes,
            exact: true,
        })
    }

    /// The articles after `cursor` in the log, and their bytes.
    async fn log_after(&self, cursor: i64) -> Result<(i64, i64)> {
        let row = sqlx::query(&format!(
            "SELECT count(*), coalesce(sum({}), 0) FROM articles WHERE id > ?1",
            bodies::size_sql("")
        ))
        .bind(cursor)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// The articles waiting for a retry to `peer`, and their bytes. A retry
    /// whose article is gone meanwhile (expired, removed) still counts
    /// until the feeder drops it.
    async fn retry_backlog(&self, peer: &str) -> Result<(i64, i64)> {
        let row = sqlx::query(&format!(
            "SELECT count(*), coalesce(sum({}), 0) FROM peer_retry r \
             LEFT JOIN articles a ON a.id = r.article_id WHERE r.peer = ?1",
            bodies::size_sql("a")
        ))
        .bind(peer)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// The head of the article log.
    pub async fn last_article_id(&self) -> Result<i64> {
        let id = sqlx::query_scalar(&format!("SELECT {LAST_ARTICLE_ID}"))
            .fetch_one(&self.pool)
            .await?;
        Ok(id)
    }
}
