//! Withdrawing one stored article: a cancel or a supersede the writer
//! carries out (RFC 5537 §5.3, §5.4), or `tidings article remove` (INN's
//! `ctlinnd cancel`). Its numbers leave its groups (found by its Xref),
//! its message-id stays in history as cancelled, so a peer cannot feed it
//! back, and it leaves the article log. A feeder that has not reached it
//! yet finds it gone and goes on.
//!
//! The statements are shared: the writer runs them on its raw handle in
//! the transaction of the batch that brought the cancel, the admin command
//! through sqlx in one of its own. Both do exactly the same.

use sqlx::SqliteConnection;

use super::raw::{Db, RawError, Stmt};
use super::{Result, Store, keep_log_head};
use crate::article;
use crate::wire::types::MessageId;

/// Takes number ?2 of group ?1 (by name) from article ?3; changes nothing
/// when the group or the number has gone since (expiry, group removal).
pub(crate) const UNNUMBER: &str = "DELETE FROM overview \
     WHERE group_id = (SELECT id FROM groups WHERE name = ?1) \
     AND number = ?2 AND article_id = ?3";

/// Counts a number out of group ?1 (by name). The low-water mark moves up
/// when the lowest went; an emptied group has low = high + 1 (RFC 3977
/// §6.1.1.2).
pub(crate) const RECOUNT: &str = "UPDATE groups SET count = max(count - 1, 0), \
     low = coalesce((SELECT min(number) FROM overview WHERE group_id = groups.id), high + 1) \
     WHERE name = ?1";

/// `UNNUMBER` and `RECOUNT` prepared on a raw handle, for the writer's
/// cancels and the removal of articles whose bodies never reached the
/// disk (`bodies::verify`).
pub(crate) struct Unnumbering<'db> {
    db: &'db Db,
    unnumber: Stmt<'db>,
    recount: Stmt<'db>,
}

impl<'db> Unnumbering<'db> {
    pub(crate) fn prepare(db: &'db Db) -> std::result::Result<Unnumbering<'db>, RawError> {
        Ok(Unnumbering {
            db,
            unnumber: db.prepare(UNNUMBER)?,
            recount: db.prepare(RECOUNT)?,
        })
    }

    /// Takes article `id`'s numbers, those of the Xref in its `head`, out
    /// of their groups, and counts each group down for the one it lost.
    pub(crate) fn run(&mut self, id: i64, head: &[u8]) -> std::result::Result<(), RawError> {
        for (group, number) in article::xref_entries(head) {
            self.unnumber.bind_text(1, &group)?;
            self.unnumber.bind_i64(2, number as i64)?;
            self.unnumber.bind_i64(3, id)?;
            self.unnumber.execute()?;
            if self.db.changes() > 0 {
                self.recount.bind_text(1, &group)?;
                self.recount.execute()?;
            }
        }
        Ok(())
    }
}

/// Remembers message-id ?1 as cancelled until ?2, whatever history said
/// of it before: two statements, to run in this order in one transaction.
/// The row is changed in whichever of history's tables holds it, or made
/// in `history_recent`.
pub(crate) const REMEMBER_CANCELLED: [&str; 2] = [
    "UPDATE history SET status = 2, article_id = NULL, remember_until = ?2 WHERE msgid = ?1",
    "INSERT INTO history_recent (msgid, article_id, status, remember_until) \
     SELECT ?1, NULL, 2, ?2 WHERE NOT EXISTS (SELECT 1 FROM history WHERE msgid = ?1) \
     ON CONFLICT (msgid) DO UPDATE SET status = 2, article_id = NULL, \
     remember_until = excluded.remember_until",
];

/// Deletes article ?1 from the log.
pub(crate) const DELETE_ARTICLE: &str = "DELETE FROM articles WHERE id = ?1";

impl Store {
    /// Withdraws a stored article from every group, remembering its
    /// message-id as cancelled until `remember_until`
    /// (`tidings article remove`). Its size in octets; `None` when it is
    /// not stored here.
    pub async fn remove_article(
        &self,
        msgid: &MessageId,
        remember_until: i64,
    ) -> Result<Option<usize>> {
        // Its rows may be in the writer's queue still (`overview`).
        self.visibility.wait().await;
        let Some(found) = self.article_by_msgid(msgid).await? else {
            return Ok(None);
        };
        // IMMEDIATE: it reads before it writes, beside a live writer.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let still: Option<i64> = sqlx::query_scalar("SELECT id FROM articles WHERE id = ?1")
            .bind(found.id)
            .fetch_optional(&mut *tx)
            .await?;
        if still.is_none() {
            // Expired or cancelled in between.
            return Ok(None);
        }
        withdraw(
            &mut tx,
            found.id,
            msgid.as_str(),
            &found.bytes,
            remember_until,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(found.bytes.len()))
    }
}

async fn withdraw(
    conn: &mut SqliteConnection,
    id: i64,
    msgid: &str,
    bytes: &[u8],
    remember_until: i64,
) -> Result<()> {
    keep_log_head(conn).await?;
    // Its numbers are those of the Xref the writer wrote.
    for (group, number) in article::xref_entries(bytes) {
        let taken = sqlx::query(UNNUMBER)
            .bind(&group)
            .bind(number as i64)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if taken > 0 {
            sqlx::query(RECOUNT)
                .bind(&group)
                .execute(&mut *conn)
                .await?;
        }
    }
    for sql in REMEMBER_CANCELLED {
        sqlx::query(sql)
            .bind(msgid)
            .bind(remember_until)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(DELETE_ARTICLE)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
