//! Overview rows written behind the articles: a batch's commit stores its
//! articles (numbered, the numbers in their Xref) and their history, and
//! the writer keeps their overview rows here, to write them, with the
//! groups' counters, a whole queue per transaction.
//!
//! Why: a group's overview ends in one leaf of the `overview` table, and a
//! commit that files articles in many groups rewrote the last leaf of each
//! (and its parents): with the load spread over 100 groups, ~72 WAL frames
//! per commit of 32 articles instead of ~20 with one group, and about half
//! of the ingest rate. Written a queue at a time, each group's leaf is
//! written once per queue instead of once per commit.
//!
//! What readers see stays whole: the rows and the counters of a group
//! (`groups.high`, `count`, `low`) are written in one transaction, so a
//! GROUP never names a number OVER cannot find. An article is readable by
//! message-id from its commit, and by number from the transaction that
//! writes its queue. So that no one reads an article's answer (239, 235,
//! 240) and then misses it by number, every read by number first waits
//! until the overview covers every article committed when it began
//! (`Visibility::wait`); the writer writes its queue at once when a reader
//! waits for it. Posts are written with their overview (a poster reads the
//! group next).
//!
//! After a crash the queue is rebuilt from the articles after
//! `overview_through` (their Xref holds the numbers), before the server
//! takes any article. A process without the writer (the admin CLI) sees
//! the overview as the server last wrote it.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::bodies::{Bodies, BodyPlace};
use super::raw::{Db, RawError, Step, Stmt};
use crate::article;

/// The `meta` key of the last article id whose overview rows are written.
pub(crate) const THROUGH: &str = "overview_through";

/// The articles whose overview rows may still be queued, in SQL: those
/// after `overview_through` (as `TAIL_ARTICLES` for history).
pub(crate) const QUEUED_ARTICLES: &str =
    "articles WHERE id > (SELECT value FROM meta WHERE key = 'overview_through')";

/// A queue this long (rows) is written at the next commit. Each group's
/// last leaf is written once per queue, so the longer the queue the fewer
/// leaves per row. Interleaved runs, one connection, pipelined window 64,
/// 2 KiB articles over 1,000 groups: a queue of 4,096 / 16,384 / 65,536
/// rows 42.6k / 50.0k / 58.6k articles/s (3 runs each); over 100 groups
/// 16,384 and 65,536 the same (63.8k / 64.4k), one group the same whatever
/// the length (and as without a queue). ~350 bytes a row: 65,536 rows are
/// some 23 MiB of memory.
const WRITE_AT_ROWS: usize = 65_536;

/// A queue whose oldest row has waited this long is written at the next
/// commit, or at the next quiet moment of the writer (`tick`).
const WRITE_AT_AGE: Duration = Duration::from_secs(2);

/// How long a reader waits for the writer to write the queue before it
/// reads what there is (a writer that is stuck must not stall readers).
const WAIT_AT_MOST: Duration = Duration::from_secs(5);

/// How often the writer is asked to write its queue while it holds one;
/// it does when it committed nothing since the last time, or the queue is
/// old (`WRITE_AT_AGE`). So a feed that stops is readable by number within
/// about two ticks, by the admin CLI too.
pub const TICK: Duration = Duration::from_millis(5);

/// Where the overview stands against the article log, shared by the writer
/// and the store's readers in one process.
pub struct Visibility {
    /// The newest article committed.
    committed: AtomicI64,
    /// Every article up to this one has its overview rows written.
    written: watch::Sender<i64>,
    /// A reader waits for the queue.
    wanted: AtomicBool,
    /// The writer holds rows not written (for `tick`).
    queued: AtomicBool,
    /// Told when the writer comes to hold rows, and when it stops: the
    /// ticks run only while it holds some, so an idle server sleeps.
    queued_changed: Notify,
    /// Tells the writer a reader waits (set when the writer starts).
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Default for Visibility {
    fn default() -> Visibility {
        Visibility {
            committed: AtomicI64::new(0),
            written: watch::Sender::new(0),
            wanted: AtomicBool::new(false),
            queued: AtomicBool::new(false),
            queued_changed: Notify::new(),
            wake: OnceLock::new(),
        }
    }
}

impl Visibility {
    /// Returns once the overview covers every article committed before
    /// the call: at once, unless the writer holds a queue.
    pub async fn wait(&self) {
        let target = self.committed.load(Ordering::Acquire);
        if *self.written.borrow() >= target {
            return;
        }
        self.wanted.store(true, Ordering::Release);
        if let Some(wake) = self.wake.get() {
            wake();
        }
        let mut written = self.written.subscribe();
        let waited = tokio::time::timeout(WAIT_AT_MOST, written.wait_for(|w| *w >= target));
        if waited.await.is_err() {
            warn!(
                article = target,
                "the writer has not written the overview in {WAIT_AT_MOST:?}: reading without it"
            );
        }
    }

    /// Watches how far the overview is written: it moves when articles
    /// become readable by number.
    pub fn written(&self) -> watch::Receiver<i64> {
        self.written.subscribe()
    }

    /// Whether the writer holds overview rows not yet written.
    pub fn queued(&self) -> bool {
        self.queued.load(Ordering::Acquire)
    }

    /// Returns once the writer holds rows not written, or has stopped
    /// (or at once if it holds some).
    pub async fn until_queued(&self) {
        if !self.queued() {
            self.queued_changed.notified().await;
        }
    }

    /// The writer has stopped: `until_queued` returns.
    pub(crate) fn stopped(&self) {
        self.queued_changed.notify_one();
    }

    /// How the writer is told a reader waits (once, at its start).
    pub(crate) fn set_wake(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.wake.set(wake);
    }

    /// Takes the word that a reader waits.
    pub(crate) fn take_wanted(&self) -> bool {
        self.wanted.swap(false, Ordering::AcqRel)
    }

    /// The writer committed articles up to `id`, their overview written
    /// up to `written`; it holds rows not written (`queued`) or not.
    pub(crate) fn committed(&self, id: i64, written: Option<i64>, queued: bool) {
        self.committed.fetch_max(id, Ordering::AcqRel);
        if queued && !self.queued.swap(true, Ordering::AcqRel) {
            self.queued_changed.notify_one();
        } else if !queued {
            self.queued.store(false, Ordering::Release);
        }
        if let Some(w) = written {
            self.move_written(w);
        }
    }

    /// The writer could not write its queue (the disk is full, say): the
    /// readers waiting, and those to come, read what is written rather
    /// than wait for it. The queue stays, and is written once it can be.
    pub(crate) fn write_failed(&self) {
        self.move_written(self.committed.load(Ordering::Acquire));
    }

    fn move_written(&self, to: i64) {
        self.written.send_if_modified(|v| {
            let moved = to > *v;
            *v = (*v).max(to);
            moved
        });
    }
}

/// An overview row waiting to be written.
struct Row {
    number: u64,
    article_id: i64,
    arrived: i64,
    line: String,
}

/// A group's waiting rows, in number order: `rows[..written]` are written
/// in the transaction under way, `rows[..committed]` belong to committed
/// articles (the rest to the transaction under way).
#[derive(Default)]
struct GroupRows {
    rows: Vec<Row>,
    committed: usize,
    written: usize,
}

/// The writer's queue of overview rows, and the statements that write it.
pub(crate) struct OverviewQueue<'db> {
    db: &'db Db,
    groups: BTreeMap<i64, GroupRows>,
    /// The row list of a group whose rows were all written, kept for the
    /// next group to queue rows: a list grown to tens of thousands of rows
    /// would otherwise be grown again, by copying, into fresh memory the
    /// system has to zero, every time the queue is written (~2.5% of the
    /// writer's time streaming into one group).
    spare: Vec<Row>,
    /// Rows not written, committed or not.
    unwritten: usize,
    /// When the oldest committed row not written was committed.
    oldest: Option<Instant>,
    /// The articles the transaction under way has written rows for, up to
    /// this log id (`write`).
    written_through: Option<i64>,
    group_exists: Stmt<'db>,
    insert: Stmt<'db>,
    insert_checked: Stmt<'db>,
    update_group: Stmt<'db>,
    removed_through: Stmt<'db>,
    set_through: Stmt<'db>,
}

impl<'db> OverviewQueue<'db> {
    /// Prepares the statements, and queues the rows of the articles after
    /// `overview_through` (written before the writer takes articles).
    pub(crate) fn new(db: &'db Db, bodies: &Bodies) -> Result<OverviewQueue<'db>, RawError> {
        let mut queue = OverviewQueue {
            db,
            groups: BTreeMap::new(),
            spare: Vec::new(),
            unwritten: 0,
            oldest: None,
            written_through: None,
            group_exists: db.prepare("SELECT 1 FROM groups WHERE id = ?1")?,
            insert: db.prepare(
                "INSERT INTO overview (group_id, number, article_id, arrived, line) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )?,
            // Only for an article still stored: one removed (`tidings
            // article remove`, expiry, group removal) since it was queued
            // keeps its numbers unused.
            insert_checked: db.prepare(
                "INSERT INTO overview (group_id, number, article_id, arrived, line) \
                 SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM articles WHERE id = ?3) \
                 ON CONFLICT DO NOTHING",
            )?,
            // `count = 0` is the count before this update: an empty group
            // starts at its first new row, or stays empty past `high`.
            update_group: db.prepare(
                "UPDATE groups SET high = max(high, ?2), count = count + ?3, \
                 low = CASE WHEN count = 0 THEN \
                 (CASE WHEN ?3 > 0 THEN ?4 ELSE max(high, ?2) + 1 END) ELSE low END \
                 WHERE id = ?1",
            )?,
            removed_through: db.prepare(&format!(
                "SELECT value FROM meta WHERE key = '{}'",
                super::tail::REMOVED_THROUGH
            ))?,
            set_through: db.prepare(&format!(
                "UPDATE meta SET value = max(value, ?1) WHERE key = '{THROUGH}'"
            ))?,
        };
        queue.rebuild(bodies)?;
        Ok(queue)
    }

    /// Queues the rows of the articles after `overview_through`, as
    /// committed: what a writer that stopped without writing its queue
    /// left.
    fn rebuild(&mut self, bodies: &Bodies) -> Result<(), RawError> {
        let db = self.db;
        let mut articles = db.prepare(&format!(
            "SELECT id, arrived, bytes, {} FROM {QUEUED_ARTICLES} ORDER BY id",
            super::bodies::columns("")
        ))?;
        let mut group_id = db.prepare("SELECT id FROM groups WHERE name = ?1")?;
        let mut ids: std::collections::HashMap<String, Option<i64>> = Default::default();
        let mut articles_read = 0usize;
        while articles.step()? == Step::Row {
            articles_read += 1;
            let (id, arrived, mut bytes) = (
                articles.column_i64(0),
                articles.column_i64(1),
                articles.column_blob(2),
            );
            // A body kept in a segment (`bodies`) counts in the line's
            // size and lines: read back (`verify` checked it already). A
            // NULL column reads as 0, and segments count from 1.
            let place = BodyPlace::from_columns(
                Some(articles.column_i64(3)).filter(|&seg| seg > 0),
                Some(articles.column_i64(4)),
                Some(articles.column_i64(5)),
                Some(articles.column_i64(6)),
            );
            if let Some(p) = place
                && let Err(e) = bodies.read_into(&p, &mut bytes)
            {
                // Not served either (403): the row still numbers it.
                warn!("article {id}: {e}: its overview line counts its head only");
            }
            let line = article::stored_overview(&bytes);
            for (name, number) in article::xref_entries(&bytes) {
                let group = match ids.get(&name) {
                    Some(g) => *g,
                    None => {
                        group_id.bind_text(1, &name)?;
                        let g = group_id.first_i64()?;
                        ids.insert(name, g);
                        g
                    }
                };
                if let Some(group) = group {
                    self.queue(group, number, id, arrived, line.clone());
                }
            }
        }
        self.committed();
        if articles_read > 0 {
            info!(
                articles = articles_read,
                rows = self.unwritten,
                "overview rows of the newest articles queued again"
            );
        }
        Ok(())
    }

    /// The highest number queued in `group`.
    pub(crate) fn high(&self, group: i64) -> Option<u64> {
        self.groups
            .get(&group)
            .and_then(|g| g.rows.last())
            .map(|r| r.number)
    }

    /// Queues a row for an article of the transaction under way.
    pub(crate) fn queue(
        &mut self,
        group: i64,
        number: u64,
        article_id: i64,
        arrived: i64,
        line: String,
    ) {
        let spare = &mut self.spare;
        let rows = self.groups.entry(group).or_insert_with(|| GroupRows {
            rows: std::mem::take(spare),
            committed: 0,
            written: 0,
        });
        rows.rows.push(Row {
            number,
            article_id,
            arrived,
            line,
        });
        self.unwritten += 1;
    }

    /// Rows not yet written.
    pub(crate) fn len(&self) -> usize {
        self.unwritten
    }

    /// Whether the queue is long or old enough to be written.
    pub(crate) fn due(&self) -> bool {
        self.unwritten >= WRITE_AT_ROWS || self.old()
    }

    /// Whether the oldest row has waited `WRITE_AT_AGE`.
    pub(crate) fn old(&self) -> bool {
        self.oldest.is_some_and(|t| t.elapsed() >= WRITE_AT_AGE)
    }

    /// Writes every queued row, with the counters of their groups, in the
    /// transaction under way, and moves `overview_through` to `through`
    /// (the last log id written in it). `committed` applies it once the
    /// transaction commits.
    pub(crate) fn write(&mut self, through: i64) -> Result<(), RawError> {
        let first = (self.groups.values())
            .filter_map(|g| g.rows.get(g.written))
            .map(|r| r.article_id)
            .min();
        if let Some(first) = first {
            // Read in this transaction: no removal commits between this
            // and the inserts.
            let removed = self.removed_through.first_i64()?.unwrap_or(i64::MAX);
            let check = removed >= first;
            for (&group, rows) in &mut self.groups {
                let new = rows.rows.get(rows.written..).unwrap_or_default();
                let (Some(head), Some(last)) = (new.first(), new.last()) else {
                    continue;
                };
                self.group_exists.bind_i64(1, group)?;
                if self.group_exists.first_i64()?.is_none() {
                    // Removed since: its rows go with it.
                    rows.written = rows.rows.len();
                    continue;
                }
                let mut added = 0i64;
                let mut low = head.number;
                for r in new {
                    let s = if check {
                        &mut self.insert_checked
                    } else {
                        &mut self.insert
                    };
                    s.bind_i64(1, group)?;
                    s.bind_i64(2, r.number as i64)?;
                    s.bind_i64(3, r.article_id)?;
                    s.bind_i64(4, r.arrived)?;
                    s.bind_text(5, &r.line)?;
                    s.execute()?;
                    if self.db.changes() > 0 {
                        if added == 0 {
                            low = r.number;
                        }
                        added += 1;
                    }
                }
                let s = &mut self.update_group;
                s.bind_i64(1, group)?;
                s.bind_i64(2, last.number as i64)?;
                s.bind_i64(3, added)?;
                s.bind_i64(4, low as i64)?;
                s.execute()?;
                rows.written = rows.rows.len();
            }
        }
        self.set_through.bind_i64(1, through)?;
        self.set_through.execute()?;
        self.unwritten = 0;
        self.written_through = Some(through);
        Ok(())
    }

    /// The transaction under way committed: its rows are queued for good,
    /// and those it wrote leave the queue. Returns the last log id whose
    /// rows it wrote, if it wrote them.
    pub(crate) fn committed(&mut self) -> Option<i64> {
        let spare = &mut self.spare;
        self.groups.retain(|_, g| {
            g.rows.drain(..g.written);
            g.written = 0;
            g.committed = g.rows.len();
            if g.rows.is_empty() && g.rows.capacity() > spare.capacity() {
                *spare = std::mem::take(&mut g.rows);
            }
            !g.rows.is_empty()
        });
        if self.unwritten == 0 {
            self.oldest = None;
        } else if self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
        self.written_through.take()
    }

    /// The transaction under way was rolled back: its rows leave the
    /// queue, and what it wrote is to be written again.
    pub(crate) fn rolled_back(&mut self) {
        self.groups.retain(|_, g| {
            g.rows.truncate(g.committed);
            g.written = 0;
            !g.rows.is_empty()
        });
        self.unwritten = self.groups.values().map(|g| g.rows.len()).sum();
        self.written_through = None;
    }
}
