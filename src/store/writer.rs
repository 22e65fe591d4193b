//! The writer's transaction: one batch of checked articles in, numbers
//! assigned, rows written, one commit (DESIGN.md "Ingest: one writer, group
//! commit"). Synchronous: it runs on the ingest thread, never on the runtime.

use std::collections::HashMap;
use std::sync::Arc;

use tracing::info;

use super::bodies::Bodies;
use super::bodies::{BodyConfig, BodyWriter, Written};
use super::overview::{OverviewQueue, Visibility};
use super::raw::{Db, RawError, Step, Stmt};
use super::tail::{self, Sizing, Tail};
use super::withdraw;
use super::{HistoryLevel, LAST_ARTICLE_ID, keep_log_head_sql};
use crate::article::{self, Prepared, cancel_lock};
use crate::config::CancelPolicy;

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

/// The statements of withdrawals (see `store::withdraw`), prepared at the
/// first one: a flood of cancels is a flood of writes too.
struct WithdrawStmts<'db> {
    history: Stmt<'db>,
    read: Stmt<'db>,
    keep_head: Stmt<'db>,
    unnumbering: withdraw::Unnumbering<'db>,
    /// `withdraw::REMEMBER_CANCELLED`, its two statements.
    remember: [Stmt<'db>; 2],
    delete: Stmt<'db>,
}

impl<'db> WithdrawStmts<'db> {
    fn prepare(db: &'db Db) -> Result<WithdrawStmts<'db>, RawError> {
        Ok(WithdrawStmts {
            history: db.prepare("SELECT status, article_id FROM history_all WHERE msgid = ?1")?,
            read: db.prepare("SELECT bytes FROM articles WHERE id = ?1")?,
            keep_head: db.prepare(&keep_log_head_sql())?,
            unnumbering: withdraw::Unnumbering::prepare(db)?,
            remember: [
                db.prepare(withdraw::REMEMBER_CANCELLED[0])?,
                db.prepare(withdraw::REMEMBER_CANCELLED[1])?,
            ],
            delete: db.prepare(withdraw::DELETE_ARTICLE)?,
        })
    }

    /// Remembers `msgid` as cancelled until `until`.
    fn remember_cancelled(&mut self, msgid: &str, until: i64) -> Result<(), RawError> {
        for s in &mut self.remember {
            s.bind_text(1, msgid)?;
            s.bind_i64(2, until)?;
            s.execute()?;
        }
        Ok(())
    }
}

/// What became of a withdrawal (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Withdrawn {
    /// The article is gone from its groups and the log.
    Done,
    /// It is not withdrawn: why.
    Refused(&'static str),
    /// It was gone already (cancelled, expired, refused).
    Gone,
    /// It has not come: its message-id is remembered as cancelled.
    Remembered,
    /// It has not come, and the policy cannot check who sent the cancel.
    NotHere,
}

impl std::fmt::Display for Withdrawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Withdrawn::Done => f.write_str("withdrawn"),
            Withdrawn::Refused(why) => write!(f, "not withdrawn: {why}"),
            Withdrawn::Gone => f.write_str("gone already"),
            Withdrawn::Remembered => f.write_str("not here yet: refused when it comes"),
            Withdrawn::NotHere => f.write_str("not here: nothing done"),
        }
    }
}

/// The statements of the hot loop, prepared once for the writer's lifetime.
pub struct BatchWriter<'db> {
    db: &'db Db,
    /// `BEGIN IMMEDIATE` and `COMMIT`, prepared once: run through
    /// `sqlite3_exec` each was parsed and compiled again at every
    /// transaction, and a lock-step peer has one per article.
    begin: Stmt<'db>,
    commit: Stmt<'db>,
    find_history: Stmt<'db>,
    find_group: Stmt<'db>,
    insert_article: Stmt<'db>,
    /// An article whose body is in a segment (`bodies`).
    insert_split: Stmt<'db>,
    /// Where bodies go when not into the database (`None`: nowhere).
    bodies: Option<BodyWriter<'db>>,
    /// The overview rows of committed articles not yet written, and of
    /// the transaction under way (`store::overview`).
    overview: OverviewQueue<'db>,
    /// Where the overview stands, for this process's readers.
    visibility: Arc<Visibility>,
    /// The transaction under way stores a post: its overview is written
    /// with it, as the poster reads the group next.
    posted: bool,
    /// Into `history`, and into `history_recent` (`Merge::into_recent`).
    merge_history: [Stmt<'db>; 2],
    merge_history_checked: [Stmt<'db>; 2],
    fold_end: Stmt<'db>,
    fold_copy: Stmt<'db>,
    fold_delete: Stmt<'db>,
    count_recent: Stmt<'db>,
    removed_through: Stmt<'db>,
    set_through: Stmt<'db>,
    article_exists: Stmt<'db>,
    remember: Stmt<'db>,
    last_id: i64,
    /// The last log id whose history row is written (`history_through`).
    through: i64,
    path_identity: String,
    /// The message-ids not yet in history (see `tail`), shared with the
    /// store's readers.
    tail: Arc<Tail>,
    /// The ids the transaction under way stores, with their log ids: they
    /// join the tail once it commits.
    fresh: HashMap<String, i64>,
    /// A merge of the tail into history under way.
    merging: Option<Merge>,
    /// What the last batch's transaction merged (for the writer's log).
    last_merge: MergeStep,
    /// Message-ids the last batch remembered as cancelled before their
    /// articles came (`CancelPolicy::All`): the writer's message-id filter
    /// must learn them, or it would wave the articles through.
    remembered: Vec<String>,
    /// Prepared at the first withdrawal.
    withdrawing: Option<WithdrawStmts<'db>>,
    /// The transaction `begin` opened: the last log id before it, and the
    /// articles written into it so far.
    open: Option<(i64, usize)>,
    /// A tail this long is merged into history while ingest goes on; a
    /// shorter one waits for the writer to be idle. It grows with history
    /// (`tail::merge_length`, `size_merges`): a merge of 16,384 ids into
    /// a history of 100,000 writes each of its ~800 leaves about once,
    /// where storing the ids one batch at a time wrote some 16,000 leaves.
    merge_at: usize,
    /// Whether the next merge of the tail goes into `history_recent`, to
    /// be folded into `history` later, or straight into `history`
    /// (`size_merges`).
    merge_into_recent: bool,
    /// Rows in `history_recent`: counted at start, then kept as merges
    /// add rows and folds move them (expiry's changes there are not
    /// counted; this only times the folds).
    recent: usize,
    /// `history_recent` is folded into `history` once it holds this many
    /// rows (`size_merges`).
    fold_at: usize,
    /// A fold under way. Only where it stands is kept, in memory: a
    /// writer that stops mid-fold leaves nothing to finish, and the next
    /// fold starts from the beginning of a table whose folded part is
    /// gone.
    folding: Option<Fold>,
}

/// A fold of `history_recent` into `history` under way.
struct Fold {
    /// The largest message-id moved so far ("" before the first slice).
    after: String,
    /// Rows moved so far, and when it began (for the log).
    moved: usize,
    started: std::time::Instant,
}

/// SQL that writes tail entry (?1 message-id, ?2 log id) to `level`.
/// `checked`: only for an article still stored, as an expiry that removed
/// a tail article wrote its row itself (which may even be forgotten
/// already). That look-up is a random read of the article log, so it is
/// made only when some tail article was removed (`removed_through`).
fn merge_sql(level: HistoryLevel, checked: bool) -> String {
    let table = level.table();
    let row = if checked {
        "SELECT ?1, ?2, 0, NULL WHERE EXISTS (SELECT 1 FROM articles WHERE id = ?2)"
    } else {
        "VALUES (?1, ?2, 0, NULL)"
    };
    format!(
        "INSERT INTO {table} (msgid, article_id, status, remember_until) {row} \
         ON CONFLICT (msgid) DO NOTHING"
    )
}

/// A merge of the tail into history, done a slice per transaction.
struct Merge {
    /// Into `history_recent` (else straight into `history`).
    into_recent: bool,
    /// `history_through` when it started: it covers the ids after this.
    after: i64,
    /// The last log id it covers: `history_through` once it is done.
    through: i64,
    /// The tail's entries up to `through`, in message-id order (their
    /// numbers in the tail, `Tail::sorted_through`).
    entries: Vec<u32>,
    /// How many are written.
    done: usize,
}

/// What a batch's transaction merged besides its articles.
enum InBatch {
    Merge(MergeStep),
    Fold(FoldStep),
}

/// A slice of a fold of `history_recent` into `history` (`fold_rows`).
struct FoldStep {
    /// The largest message-id moved; empty: the fold is done.
    end: String,
    /// How many rows moved.
    moved: usize,
}

/// How much of the tail `merge_tail` writes per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeSlices {
    /// `IDLE_SLICE`: an article arriving meanwhile waits little.
    Short,
    /// `MERGE_SLICE`: nothing else will come (shutdown).
    Long,
}

/// What a call of `merge_tail` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStep {
    /// Ids written to history (some may have been there already).
    pub written: usize,
    /// Whether the merge goes on (call again).
    pub more: bool,
}

/// The fewest articles handed to the writer at once whose large bodies go
/// to a segment (`bodies`); fewer keep them in the database. Writing a
/// body once instead of twice pays for a batch (20 KiB articles streamed,
/// window 64: ~16,500 -> ~23,000/s), but a segment's sync comes on top of
/// the WAL's: a lone article waits for both (lock-step IHAVE of 20 KiB
/// articles went from ~3,500 to ~1,700/s with every body in a segment),
/// and so does a small batch. With 4, a CHECK-first feed at window 20
/// (innfeed's way) lost ~10% (9.8k -> 8.8k/s); with 8 it is as fast as
/// with every body in the database, and window 64 keeps its gain (16
/// lost some of it: 18.7k/s).
const BODIES_OUT_FROM: usize = 8;

/// Ids merged per transaction at shutdown, when nothing else can come.
const MERGE_SLICE: usize = 2048;

/// Ids merged per transaction in the writer's short idle moments: ~32
/// B-tree inserts, some 100 µs.
const IDLE_SLICE: usize = 32;

/// Ids merged per article of a batch, while a merge is under way: the
/// merge must outrun the tail's growth to end, and small slices spread its
/// cost over the batches instead of stalling one of them.
const MERGE_PER_ARTICLE: usize = 4;

/// Rows of `history_recent` folded per article of a batch while a fold is
/// under way: it then ends within half as many articles as it has rows,
/// whatever the idle moments add.
const FOLD_PER_ARTICLE: usize = 2;

/// A group touched by the batch: where its numbering stands.
struct Slot {
    id: i64,
    status: char,
    high: u64,
}

impl<'db> BatchWriter<'db> {
    /// Prepares the statements and reads the history tail (the articles
    /// after `history_through`) into `tail`, which is live from then on.
    /// The overview rows of the articles after `overview_through` are
    /// queued again; `write_overview` writes them.
    pub fn new(
        db: &'db Db,
        path_identity: &str,
        tail: Arc<Tail>,
        visibility: Arc<Visibility>,
        sizing: Sizing,
        reader: &Bodies,
        bodies: Option<BodyConfig>,
    ) -> Result<BatchWriter<'db>, RawError> {
        let last_id = (db.prepare(&format!("SELECT {LAST_ARTICLE_ID}"))?)
            .first_i64()?
            .unwrap_or(0);
        let through = (db.prepare(&format!(
            "SELECT value FROM meta WHERE key = '{}'",
            tail::THROUGH
        ))?)
        .first_i64()?
        .unwrap_or(0);
        let mut unmerged =
            db.prepare(&format!("SELECT msgid, id FROM {}", super::TAIL_ARTICLES))?;
        let mut entries = Vec::new();
        while unmerged.step()? == Step::Row {
            entries.push((unmerged.column_text(0), unmerged.column_i64(1)));
        }
        drop(unmerged);
        let mut count_recent = db.prepare("SELECT count(*) FROM history_recent")?;
        let recent = count_recent.first_i64()?.unwrap_or(0);
        tail.start(entries);
        Ok(BatchWriter {
            db,
            find_history: db.prepare("SELECT status FROM history_all WHERE msgid = ?1")?,
            begin: db.prepare("BEGIN IMMEDIATE")?,
            commit: db.prepare("COMMIT")?,
            find_group: db.prepare("SELECT id, high, status FROM groups WHERE name = ?1")?,
            insert_article: db.prepare(
                "INSERT INTO articles (id, arrived, msgid, bytes) VALUES (?1, ?2, ?3, ?4)",
            )?,
            insert_split: db.prepare(
                "INSERT INTO articles \
                 (id, arrived, msgid, bytes, body_seg, body_off, body_len, body_crc) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?,
            bodies: match bodies {
                Some(config) => Some(BodyWriter::new(db, config)?),
                None => None,
            },
            overview: OverviewQueue::new(db, reader)?,
            visibility,
            posted: false,
            merge_history: [
                db.prepare(&merge_sql(HistoryLevel::Folded, false))?,
                db.prepare(&merge_sql(HistoryLevel::Recent, false))?,
            ],
            merge_history_checked: [
                db.prepare(&merge_sql(HistoryLevel::Folded, true))?,
                db.prepare(&merge_sql(HistoryLevel::Recent, true))?,
            ],
            fold_end: db.prepare(
                "SELECT max(msgid) FROM \
                 (SELECT msgid FROM history_recent WHERE msgid > ?1 ORDER BY msgid LIMIT ?2)",
            )?,
            // Rows change in the table that holds them, so the folded
            // table has none of these; a newer word wins all the same.
            fold_copy: db.prepare(
                "INSERT INTO history (msgid, article_id, status, remember_until) \
                 SELECT msgid, article_id, status, remember_until FROM history_recent \
                 WHERE msgid > ?1 AND msgid <= ?2 \
                 ON CONFLICT (msgid) DO UPDATE SET article_id = excluded.article_id, \
                 status = excluded.status, remember_until = excluded.remember_until",
            )?,
            fold_delete: db
                .prepare("DELETE FROM history_recent WHERE msgid > ?1 AND msgid <= ?2")?,
            count_recent,
            removed_through: db.prepare(&format!(
                "SELECT value FROM meta WHERE key = '{}'",
                tail::REMOVED_THROUGH
            ))?,
            article_exists: db.prepare("SELECT 1 FROM articles WHERE id = ?1")?,
            set_through: db.prepare(&format!(
                "UPDATE meta SET value = ?1 WHERE key = '{}'",
                tail::THROUGH
            ))?,
            remember: db.prepare(
                "INSERT INTO history_recent (msgid, article_id, status, remember_until) \
                 SELECT ?1, NULL, 1, ?2 WHERE NOT EXISTS (SELECT 1 FROM history WHERE msgid = ?1) \
                 ON CONFLICT (msgid) DO NOTHING",
            )?,
            last_id,
            through,
            path_identity: path_identity.to_owned(),
            tail,
            fresh: HashMap::new(),
            merging: None,
            last_merge: MergeStep::default(),
            remembered: Vec::new(),
            withdrawing: None,
            open: None,
            merge_at: sizing.merge_at.max(1),
            recent: usize::try_from(recent).unwrap_or(0),
            merge_into_recent: sizing.into_recent,
            fold_at: sizing.fold_at.max(1),
            folding: None,
        })
    }

    /// Opens a transaction for `add` to write batches into, until `commit`
    /// (or `rollback`): batches that come while the last commit is being
    /// synced share the next one.
    pub fn begin(&mut self) -> Result<(), RawError> {
        self.remembered.clear();
        self.begin.execute()?;
        self.open = Some((self.last_id, 0));
        if let Some(b) = self.bodies.as_mut() {
            b.begin();
        }
        Ok(())
    }

    /// The database has a size limit, or no longer: with one, bodies stay
    /// in the database, where the limit counts them.
    pub fn set_size_limited(&mut self, limited: bool) {
        if let Some(b) = self.bodies.as_mut() {
            b.set_limited(limited);
        }
    }

    /// The body segments written since the last call: the sync of the
    /// transaction just committed must cover them.
    pub fn take_written(&mut self) -> Vec<Written> {
        match self.bodies.as_mut() {
            Some(b) => b.take_written(),
            None => Vec::new(),
        }
    }

    /// Sizes the merges for history's length (`tail::Sizing`).
    pub fn size_merges(&mut self, sizing: Sizing) {
        self.merge_at = sizing.merge_at.max(1);
        self.merge_into_recent = sizing.into_recent;
        self.fold_at = sizing.fold_at.max(1);
    }

    /// Whether a transaction is open (`begin`).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Writes `batch` into the open transaction (`begin`), stamped `now`
    /// (Unix seconds). On error the transaction must be rolled back.
    ///
    /// `rejected` are message-ids refused before they reached the writer
    /// (malformed, unwanted): they are remembered until `remember_until` so
    /// a peer that offers them again is told 438/435 at once. Relayed
    /// articles that carry none of our groups are remembered the same way.
    ///
    /// `surely_new` tells ids certainly not stored nor remembered (see
    /// `is_duplicate`); `|_| false` makes every id be looked up.
    ///
    /// The cancels and superseding articles of the batch withdraw their
    /// targets in the same transaction, as far as `cancels` allows.
    pub fn add(
        &mut self,
        batch: &[(&Prepared, Origin)],
        rejected: &[&str],
        now: i64,
        remember_until: i64,
        surely_new: &dyn Fn(&str) -> bool,
        cancels: CancelPolicy,
    ) -> Result<Vec<Outcome>, RawError> {
        let outcomes = self.write_rows(batch, now, remember_until, surely_new)?;
        self.withdraw_all(batch, &outcomes, cancels, remember_until)?;
        for id in rejected {
            self.remember_rejected(id, remember_until)?;
        }
        if let Some((_, articles)) = self.open.as_mut() {
            *articles += batch.len();
        }
        Ok(outcomes)
    }

    /// Commits the open transaction; on error it is rolled back and
    /// nothing of it is stored.
    pub fn commit(&mut self) -> Result<(), RawError> {
        let (saved_last_id, articles) = self.open.unwrap_or((self.last_id, 0));
        // A writer never idle long enough to merge (`merge_idle`) merges
        // in its batches once the tail is twice its length, faster than
        // the tail grows, so the merge ends. It covers the tail as
        // committed before this transaction.
        // A fold of `history_recent` under way goes on in the batches too:
        // it is ten times a tail's length, and the idle moments of a busy
        // writer did not end one (a fold of 2.6 million rows was still
        // running 64 s and 2.7 million articles later).
        let done = if self.tail.len() >= 2 * self.merge_at {
            self.merge_rows(MERGE_PER_ARTICLE * articles.max(1), false, saved_last_id)
                .map(|step| step.map(InBatch::Merge))
        } else if self.folding.is_some() {
            self.fold_rows(FOLD_PER_ARTICLE * articles.max(1))
                .map(|step| Some(InBatch::Fold(step)))
        } else {
            Ok(None)
        };
        // The overview goes with a post, when a reader waits for it, or
        // once the queue is long or old.
        let done = done.and_then(|step| {
            let wanted = self.visibility.take_wanted();
            if wanted || self.posted || self.overview.due() {
                self.overview.write(self.last_id)?;
            }
            Ok(step)
        });
        let done = done.and_then(|step| {
            if let Some(b) = self.bodies.as_mut() {
                b.before_commit()?;
            }
            self.commit.execute().map(|()| step)
        });
        match done {
            Ok(step) => {
                self.open = None;
                self.posted = false;
                self.overview_committed();
                self.tail.add(self.fresh.drain());
                self.last_merge = match step {
                    Some(InBatch::Merge(step)) => {
                        self.merged(step);
                        step
                    }
                    Some(InBatch::Fold(step)) => self.folded(step),
                    None => MergeStep::default(),
                };
                Ok(())
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Abandons the open transaction: nothing of it is stored.
    pub fn rollback(&mut self) {
        // Best effort: if COMMIT failed the transaction may already be gone.
        let _ = self.db.exec("ROLLBACK");
        if let Some((saved_last_id, _)) = self.open.take() {
            self.last_id = saved_last_id;
        }
        if let Some(b) = self.bodies.as_mut() {
            b.rolled_back();
        }
        self.overview.rolled_back();
        self.posted = false;
        self.fresh.clear();
        self.remembered.clear();
        self.last_merge = MergeStep::default();
    }

    /// Writes the queued overview rows in a transaction of their own, if
    /// there are any (a reader waits, the queue is old, or the writer
    /// starts or stops); how many rows it wrote. Everything committed is
    /// readable by number afterwards.
    pub fn write_overview(&mut self) -> Result<usize, RawError> {
        let rows = self.overview.len();
        if rows > 0 {
            self.begin.execute()?;
            let done = (self.overview.write(self.last_id)).and_then(|()| self.commit.execute());
            if let Err(e) = done {
                let _ = self.db.exec("ROLLBACK");
                self.overview.rolled_back();
                self.visibility.write_failed();
                return Err(e);
            }
        }
        self.overview_committed();
        Ok(rows)
    }

    /// Tells this process's readers where the overview stands after a
    /// commit.
    fn overview_committed(&mut self) {
        let written = self.overview.committed();
        let queued = self.overview.len() > 0;
        // With nothing queued, every article committed is written.
        let written = if queued { written } else { Some(self.last_id) };
        self.visibility.committed(self.last_id, written, queued);
    }

    /// Overview rows queued and not written (`store::overview`).
    pub fn overview_queued(&self) -> usize {
        self.overview.len()
    }

    /// Whether the oldest queued overview row has waited long enough to
    /// be written whatever comes.
    pub fn overview_old(&self) -> bool {
        self.overview.old()
    }

    /// Whether `msgid` is stored and not yet in history: earlier in the
    /// transaction under way, or in the tail and not removed since (by an
    /// expiry, which then wrote its history row).
    fn in_tail(&mut self, msgid: &str) -> Result<bool, RawError> {
        if self.fresh.contains_key(msgid) {
            return Ok(true);
        }
        let Some(id) = self.tail.get(msgid) else {
            return Ok(false);
        };
        self.article_exists.bind_i64(1, id)?;
        Ok(self.article_exists.first_i64()?.is_some())
    }

    /// Merges a slice of the tail into history in a transaction of its
    /// own, whatever the tail holds: the writer has had nothing to do for
    /// a while, or is stopping.
    ///
    /// With `Short` slices, once the tail is merged, it goes on with a
    /// fold of `history_recent` that is due or under way (`fold_idle`);
    /// a stopping writer (`Long`) leaves that for its next start.
    pub fn merge_tail(&mut self, slices: MergeSlices) -> Result<MergeStep, RawError> {
        match slices {
            MergeSlices::Short => {
                let step = self.merge_slice(IDLE_SLICE, true)?;
                if step.written > 0 || step.more {
                    return Ok(step);
                }
                self.fold_idle()
            }
            MergeSlices::Long => self.merge_slice(MERGE_SLICE, true),
        }
    }

    /// Between two batches, when no article is waiting: goes on with a
    /// merge, or starts one once the tail is `merge_at` long, a few ids at
    /// a time, so an article arriving meanwhile waits little. Under a
    /// pipelined feed the writer waits for the next batch about half the
    /// time; this puts the merge there instead of in the batches' commits.
    ///
    /// With no merge of the tail due, it goes on with a fold of
    /// `history_recent` into `history` in the same way (`fold_idle`).
    pub fn merge_idle(&mut self) -> Result<MergeStep, RawError> {
        if self.merging.is_none() && self.tail.len() < self.merge_at {
            return self.fold_idle();
        }
        self.merge_slice(IDLE_SLICE, false)
    }

    /// Folds a slice of `history_recent` into `history` in a transaction
    /// of its own, if a fold is due (`fold_at` rows) or under way.
    fn fold_idle(&mut self) -> Result<MergeStep, RawError> {
        if !self.fold_due() {
            return Ok(MergeStep::default());
        }
        let step = self.in_own_transaction(|w| w.fold_rows(IDLE_SLICE))?;
        Ok(self.folded(step))
    }

    /// Whether a fold is under way, or `history_recent` holds enough rows
    /// to start one.
    fn fold_due(&self) -> bool {
        self.folding.is_some() || self.recent >= self.fold_at
    }

    /// Runs `work` in a transaction of its own: committed if it succeeds,
    /// rolled back if it or the commit fails.
    fn in_own_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<T, RawError>,
    ) -> Result<T, RawError> {
        self.begin.execute()?;
        let done = work(self).and_then(|t| self.commit.execute().map(|()| t));
        if done.is_err() {
            let _ = self.db.exec("ROLLBACK");
        }
        done
    }

    /// Moves up to `max` rows of `history_recent` into `history`, in
    /// message-id order from where the fold stands (the beginning, for a
    /// fold to start: the caller has seen one is due, `fold_due`), in the
    /// transaction under way. `folded` applies the step once committed.
    ///
    /// A fold writes each leaf of `history` about once: a slice covers
    /// the next stretch of its keys. Rows merged meanwhile behind where it
    /// stands stay for the next fold.
    fn fold_rows(&mut self, max: usize) -> Result<FoldStep, RawError> {
        let after = self
            .folding
            .as_ref()
            .map(|f| f.after.clone())
            .unwrap_or_default();
        self.fold_end.bind_text(1, &after)?;
        self.fold_end.bind_i64(2, max as i64)?;
        // NULL (read as "") past the last row: the fold is done.
        let end = (self.fold_end.first_row(|r| r.column_text(0))?).unwrap_or_default();
        if end.is_empty() {
            return Ok(FoldStep { end, moved: 0 });
        }
        for s in [&mut self.fold_copy, &mut self.fold_delete] {
            s.bind_text(1, &after)?;
            s.bind_text(2, &end)?;
            s.execute()?;
        }
        let moved = usize::try_from(self.db.changes()).unwrap_or(0);
        Ok(FoldStep { end, moved })
    }

    /// Records a committed fold step.
    fn folded(&mut self, step: FoldStep) -> MergeStep {
        self.recent = self.recent.saturating_sub(step.moved);
        let more = !step.end.is_empty();
        let recent = self.recent;
        let fold = self.folding.get_or_insert_with(|| {
            info!(
                rows = recent + step.moved,
                "folding recent history into history"
            );
            Fold {
                after: String::new(),
                moved: 0,
                started: std::time::Instant::now(),
            }
        });
        fold.moved += step.moved;
        if more {
            fold.after = step.end;
        } else {
            // What was merged behind the fold stays; counted afresh, so a
            // count that drifted (expiry) is set right once per fold.
            if let Ok(Some(rows)) = self.count_recent.first_i64() {
                self.recent = usize::try_from(rows).unwrap_or(0);
            }
            info!(
                rows = fold.moved,
                millis = fold.started.elapsed().as_millis() as u64,
                left = self.recent,
                "recent history folded into history"
            );
            self.folding = None;
        }
        MergeStep {
            written: step.moved,
            more,
        }
    }

    fn merge_slice(&mut self, max: usize, all: bool) -> Result<MergeStep, RawError> {
        let last_id = self.last_id;
        let step = self.in_own_transaction(|w| w.merge_rows(max, all, last_id))?;
        if let Some(step) = step {
            self.merged(step);
        }
        Ok(step.unwrap_or_default())
    }

    /// Writes up to `max` ids of the tail to history in the transaction
    /// under way, starting a merge when the tail is `merge_at` long (or,
    /// with `all`, not empty); `None` when no merge is due. `merged`
    /// applies the step once committed.
    /// A merge started here covers the tail up to log id `committed`: the
    /// articles of the transaction under way join the tail only once it
    /// commits, so a later merge takes them.
    fn merge_rows(
        &mut self,
        max: usize,
        all: bool,
        committed: i64,
    ) -> Result<Option<MergeStep>, RawError> {
        if self.merging.is_none() {
            let waiting = self.tail.len();
            if waiting == 0 || (!all && waiting < self.merge_at) {
                return Ok(None);
            }
            self.merging = Some(Merge {
                into_recent: self.merge_into_recent,
                after: self.through,
                through: committed,
                entries: self.tail.sorted_through(committed),
                done: 0,
            });
        }
        let Some(merge) = self.merging.as_ref() else {
            return Ok(None);
        };
        let end = (merge.done + max).min(merge.entries.len());
        // Read in this transaction: a removal that commits later writes
        // its history row over the one merged here.
        // No key: as if anything may have been removed.
        let newest_removed = self.removed_through.first_i64()?.unwrap_or(i64::MAX);
        let check = newest_removed > merge.after;
        let level = usize::from(merge.into_recent);
        let tail = self.tail.clone();
        let ids = tail.read();
        // The entries stay until the merge ends (`merged`), and only this
        // writer takes them away.
        let slice = merge.entries[merge.done..end].iter();
        for (msgid, id) in slice.filter_map(|&n| ids.as_ref()?.entry(n)) {
            let s = if check {
                &mut self.merge_history_checked[level]
            } else {
                &mut self.merge_history[level]
            };
            s.bind_text(1, msgid)?;
            s.bind_i64(2, id)?;
            s.execute()?;
        }
        drop(ids);
        let last = end == merge.entries.len();
        if last {
            self.set_through.bind_i64(1, merge.through)?;
            self.set_through.execute()?;
        }
        Ok(Some(MergeStep {
            written: end - merge.done,
            more: !last,
        }))
    }

    /// Records a committed merge step; a finished merge's ids leave the
    /// tail (history has them now).
    fn merged(&mut self, step: MergeStep) {
        let Some(merge) = self.merging.as_mut() else {
            return;
        };
        merge.done += step.written;
        if merge.into_recent {
            // Some may have been there already; this only times the folds.
            self.recent += step.written;
        }
        if !step.more {
            self.through = merge.through;
            self.tail.forget_through(merge.through);
            self.merging = None;
        }
    }

    /// What the last batch's transaction merged.
    pub fn last_merge(&self) -> MergeStep {
        self.last_merge
    }

    fn remember_rejected(&mut self, msgid: &str, until: i64) -> Result<(), RawError> {
        if self.in_tail(msgid)? {
            // Stored already; its history row is on its way.
            return Ok(());
        }
        self.remember.bind_text(1, msgid)?;
        self.remember.bind_i64(2, until)?;
        self.remember.execute()
    }

    /// Whether `msgid` is stored already (in this transaction, the tail or
    /// history) or remembered as refused. `surely_new` says an id is
    /// certainly neither in the tail nor in history (the message-id
    /// filter): then only this transaction's ids are looked at, which
    /// spares a read of a random leaf of history per new article.
    fn is_duplicate(
        &mut self,
        msgid: &str,
        surely_new: &dyn Fn(&str) -> bool,
    ) -> Result<bool, RawError> {
        if surely_new(msgid) {
            return Ok(self.fresh.contains_key(msgid));
        }
        if self.in_tail(msgid)? {
            return Ok(true);
        }
        self.find_history.bind_text(1, msgid)?;
        Ok(self.find_history.first_i64()?.is_some())
    }

    fn write_rows(
        &mut self,
        batch: &[(&Prepared, Origin)],
        now: i64,
        remember_until: i64,
        surely_new: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Outcome>, RawError> {
        let mut slots: HashMap<String, Option<Slot>> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        // A segment costs the sync a second file: worth it for a batch,
        // not for a lone article (`BODIES_OUT_FROM`).
        let bodies_out = batch.len() >= BODIES_OUT_FROM;
        for &(article, origin) in batch {
            let msgid = article.message_id.as_str();
            if self.is_duplicate(msgid, surely_new)? {
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
            // A control message is filed in its control group instead of
            // its newsgroups, where we carry one; then its newsgroups need
            // not exist nor take posts here (a newgroup names a group that
            // does not exist yet).
            let control_group = match article.control_verb() {
                Some(verb) => self.control_group(&verb, &mut slots)?,
                None => None,
            };
            if origin == Origin::Post
                && control_group.is_none()
                && let Some(reason) = posting_refusal(article, &slots)
            {
                outcomes.push(Outcome::Refused(reason));
                continue;
            }
            let filed = control_group.as_deref().into_iter().chain(
                (article.newsgroups.iter())
                    .map(|g| g.as_str())
                    .filter(|_| control_group.is_none()),
            );
            let mut numbers = Vec::with_capacity(article.newsgroups.len());
            for name in filed {
                if let Some(Some(slot)) = slots.get_mut(name) {
                    slot.high += 1;
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
            // A large body goes to a segment, and the row keeps the head.
            let apart =
                bodies_out && (self.bodies.as_ref()).is_some_and(|b| b.keeps(article.body.len()));
            let (bytes, line) = if apart {
                article.finish_head(&xref)
            } else {
                article.finish(&xref)
            };
            let place = match self.bodies.as_mut() {
                Some(b) if apart => Some(b.put(&article.body)?),
                _ => None,
            };

            self.last_id += 1;
            let id = self.last_id;
            let s = match place {
                Some(p) => {
                    let s = &mut self.insert_split;
                    s.bind_i64(5, p.seg)?;
                    s.bind_i64(6, i64::try_from(p.off).unwrap_or(i64::MAX))?;
                    s.bind_i64(7, p.len as i64)?;
                    s.bind_i64(8, i64::from(p.crc))?;
                    s
                }
                None => &mut self.insert_article,
            };
            s.bind_i64(1, id)?;
            s.bind_i64(2, now)?;
            s.bind_text(3, msgid)?;
            s.bind_blob(4, &bytes)?;
            s.execute()?;

            for (_, number, group_id) in &numbers {
                (self.overview).queue(*group_id, *number, id, now, line.clone());
            }
            self.posted |= origin == Origin::Post;

            self.fresh.insert(msgid.to_owned(), id);

            outcomes.push(Outcome::Stored {
                article_id: id,
                numbers: numbers.into_iter().map(|(n, num, _)| (n, num)).collect(),
            });
        }

        Ok(outcomes)
    }

    /// Where a control message with `verb` is filed: `control.<verb>`, or
    /// else `control`, whichever we carry first (INN files them so, and
    /// takes them whatever their newsgroups, so that they travel on);
    /// `None` when we carry neither, and it goes to its newsgroups.
    fn control_group(
        &mut self,
        verb: &str,
        slots: &mut HashMap<String, Option<Slot>>,
    ) -> Result<Option<String>, RawError> {
        for name in article::control_groups(verb) {
            if !slots.contains_key(&name) {
                let slot = self.load_group(&name)?;
                slots.insert(name.clone(), slot);
            }
            if matches!(slots.get(&name), Some(Some(_))) {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Carries out the withdrawals the stored articles of a batch ask for,
    /// after the batch's rows are written (and the overview queue, at a
    /// withdrawal of something stored), so that a cancel that came in the
    /// same batch as its article finds it.
    fn withdraw_all(
        &mut self,
        batch: &[(&Prepared, Origin)],
        outcomes: &[Outcome],
        cancels: CancelPolicy,
        remember_until: i64,
    ) -> Result<(), RawError> {
        if cancels == CancelPolicy::None {
            return Ok(());
        }
        for ((article, _), outcome) in batch.iter().zip(outcomes) {
            let Some(target) = &article.withdraws else {
                continue;
            };
            if !matches!(outcome, Outcome::Stored { .. }) || *target == article.message_id {
                continue;
            }
            let keys = article::header_value(&article.head, "Cancel-Key");
            let done = self.withdraw(target.as_str(), keys.as_deref(), cancels, remember_until)?;
            info!(
                "{} from {}: {target} {done}",
                if article.control.is_some() {
                    "cancel"
                } else {
                    "supersede"
                },
                article.message_id
            );
        }
        Ok(())
    }

    /// Withdraws the article `target` if it is stored here and `policy`
    /// lets `keys` (the Cancel-Key of the cancel) withdraw it; see
    /// `store::withdraw`.
    fn withdraw(
        &mut self,
        target: &str,
        keys: Option<&str>,
        policy: CancelPolicy,
        remember_until: i64,
    ) -> Result<Withdrawn, RawError> {
        let fresh = self.fresh.get(target).copied();
        let known = match fresh {
            Some(id) => Some(id),
            None if self.in_tail(target)? => self.tail.get(target),
            None => None,
        };
        if self.withdrawing.is_none() {
            self.withdrawing = Some(WithdrawStmts::prepare(self.db)?);
        }
        let Some(st) = self.withdrawing.as_mut() else {
            return Ok(Withdrawn::NotHere);
        };
        let stored = match known {
            Some(id) => Some(id),
            None => {
                st.history.bind_text(1, target)?;
                let found = st
                    .history
                    .first_row(|r| (r.column_i64(0), r.column_i64(1)))?;
                match found {
                    Some((0, id)) => Some(id),
                    Some(_) => return Ok(Withdrawn::Gone),
                    None => None,
                }
            }
        };
        let Some(id) = stored else {
            if policy != CancelPolicy::All {
                return Ok(Withdrawn::NotHere);
            }
            st.remember_cancelled(target, remember_until)?;
            self.remembered.push(target.to_owned());
            return Ok(Withdrawn::Remembered);
        };
        st.read.bind_i64(1, id)?;
        let Some(bytes) = st.read.first_row(|r| r.column_blob(0))? else {
            return Ok(Withdrawn::Gone);
        };
        let lock = article::header_value(&bytes, "Cancel-Lock");
        let opened = match (keys, &lock) {
            (Some(keys), Some(lock)) => cancel_lock::opens(keys, lock),
            _ => false,
        };
        let allowed = match policy {
            CancelPolicy::All => true,
            CancelPolicy::Auth => lock.is_none() || opened,
            CancelPolicy::RequireAuth => opened,
            CancelPolicy::None => false,
        };
        if !allowed {
            return Ok(Withdrawn::Refused(if lock.is_none() {
                "it has no Cancel-Lock"
            } else {
                "no Cancel-Key opens its Cancel-Lock"
            }));
        }
        st.keep_head.execute()?;
        // Its rows may be queued still: written first, they are taken out
        // as any others.
        if self.overview.len() > 0 {
            self.overview.write(self.last_id)?;
        }
        // Its numbers are those of the Xref the writer wrote.
        st.unnumbering.run(id, &bytes)?;
        st.remember_cancelled(target, remember_until)?;
        st.delete.bind_i64(1, id)?;
        st.delete.execute()?;
        Ok(Withdrawn::Done)
    }

    /// The message-ids the last batch remembered as cancelled before their
    /// articles came.
    pub fn remembered(&self) -> &[String] {
        &self.remembered
    }

    /// Where a group's numbering stands: its `high` in the table, or the
    /// last number queued for its overview (`store::overview`).
    fn load_group(&mut self, name: &str) -> Result<Option<Slot>, RawError> {
        let s = &mut self.find_group;
        s.bind_text(1, name)?;
        let slot = s.first_row(|r| Slot {
            id: r.column_i64(0),
            high: r.column_i64(1).max(0) as u64,
            status: r.column_text(2).chars().next().unwrap_or('y'),
        })?;
        Ok(slot.map(|slot| Slot {
            high: slot.high.max(self.overview.high(slot.id).unwrap_or(0)),
            ..slot
        }))
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
