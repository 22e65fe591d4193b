//! The SQLite store: the only SQL in the crate (schema in `migrations/`).
//!
//! Reads go through a small sqlx pool tuned for point reads and range scans
//! (no ping on acquire, mmap). Article writes go through one writer
//! connection driven by `ingest` with the raw statements of `writer`; group
//! administration uses ordinary sqlx queries, safe beside a running server
//! under WAL.

pub mod bodies;
pub mod expire;
pub mod overview;
pub mod peers;
pub mod raw;
pub mod tail;
pub mod users;
pub mod walvfs;
pub mod withdraw;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};
use thiserror::Error;

use crate::config::{StorageConfig, Synchronous};
use crate::wire::types::{GroupName, MessageId, Range};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Raw(#[from] raw::RawError),
    #[error("cannot create {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Body(#[from] bodies::BodyError),
    #[error("a body could not be read: {0}")]
    BodyTask(String),
    #[error("no such newsgroup: {0}")]
    NoSuchGroup(String),
    #[error("newsgroup already exists: {0}")]
    GroupExists(String),
    #[error("user already exists: {0}")]
    UserExists(String),
    #[error("no such user: {0}")]
    NoSuchUser(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What `Store::import_groups` did (or would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupImport {
    /// Groups created.
    pub created: usize,
    /// Groups that were here already (left as they were).
    pub existing: usize,
    /// Groups here without a description that got one.
    pub described: usize,
    /// Groups here whose own, different description was kept.
    pub kept: usize,
    /// Descriptions of groups not carried here.
    pub not_carried: usize,
}

/// A newsgroup as LIST ACTIVE / GROUP see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub id: i64,
    pub name: String,
    /// 'y', 'n' or 'm'.
    pub status: char,
    pub description: String,
    pub low: u64,
    pub high: u64,
    pub count: u64,
    /// Unix seconds.
    pub created: i64,
    pub creator: String,
}

/// An article as stored.
#[derive(Debug, Clone)]
pub struct StoredArticle {
    pub id: i64,
    pub msgid: String,
    pub bytes: Vec<u8>,
}

/// Where the body of a row's article is, from the four columns of
/// `bodies::columns` from `first` on: `None` when the body is in `bytes`.
fn body_place(row: &sqlx::sqlite::SqliteRow, first: usize) -> Option<bodies::BodyPlace> {
    bodies::BodyPlace::from_columns(
        row.get(first),
        row.get(first + 1),
        row.get(first + 2),
        row.get(first + 3),
    )
}

/// Totals for `tidings stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub groups: i64,
    pub articles: i64,
    pub article_bytes: i64,
    pub history: i64,
    pub last_article_id: i64,
    pub database_bytes: i64,
    /// Of those, the free pages' octets: room left by expiry, or made in
    /// advance (`storage.preallocate_mib`), that new articles take first.
    pub free_bytes: i64,
    /// Body segment files (`bodies`), and the octets they take on disk.
    pub body_segments: i64,
    pub body_segment_bytes: u64,
    /// Articles whose body is in a segment.
    pub articles_with_body_apart: i64,
    /// Segments none of whose bodies is left, to be filled again.
    pub free_body_segments: i64,
}

/// Stores the article log's head in meta; called before articles are
/// deleted. The writer numbers the log from the highest id it finds at
/// start, so without this, deleting the newest articles would hand their
/// ids out again (and feeders' cursors may be past them).
pub(crate) async fn keep_log_head(conn: &mut SqliteConnection) -> Result<()> {
    sqlx::query(&keep_log_head_sql()).execute(conn).await?;
    Ok(())
}

/// The meta key of `Store::control_cursor`.
fn control_cursor_key(group: &str) -> String {
    format!("control:{group}")
}

/// The statement of `keep_log_head`, for the writer's raw handle.
pub(crate) fn keep_log_head_sql() -> String {
    format!("UPDATE meta SET value = {LAST_ARTICLE_ID} WHERE key = 'last_article_id'")
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    synchronous: Synchronous,
    write_cache_kib: u32,
    /// The message-ids not yet in history (`tail`), live while this
    /// process runs the writer.
    tail: Arc<tail::Tail>,
    /// Where the overview stands against the log (`overview`): reads by
    /// number wait for the rows the writer has queued.
    visibility: Arc<overview::Visibility>,
    /// The bodies kept outside the database (`bodies`).
    bodies: Arc<bodies::Bodies>,
    /// Bodies of at least this many octets are kept there (0: none).
    body_min_bytes: usize,
    /// The size of a body segment.
    body_segment_bytes: u64,
}

/// The page size of a database this server creates: 8 KiB pages hold a 2
/// KiB article in ~2.8 KB instead of 4.2 KB (STORAGE-NOTES.md). It only
/// takes effect when the file is created.
pub(crate) const PAGE_BYTES: u32 = 8192;

/// Connection options every connection shares.
fn base_options(path: &Path, synchronous: Synchronous) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .page_size(PAGE_BYTES)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match synchronous {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(false)
        .disable_statement_logging()
}

/// The head of the article log (the last id ever given out), in SQL: the
/// newest article, or what `meta` kept when the newest were deleted.
pub(crate) const LAST_ARTICLE_ID: &str = "max((SELECT value FROM meta WHERE key = 'last_article_id'), \
     coalesce((SELECT max(id) FROM articles), 0))";

/// SQL that marks the articles whose ids `ids` selects as removed in
/// history, remembered until `until`: two statements, to run in this
/// order in one transaction. An id's row is changed in whichever of
/// history's tables holds it; an article of the tail has none yet, and
/// gets one in `history_recent` (the merge that writes one later leaves
/// the row made here alone).
pub(crate) fn remember_removed(ids: &str, until: &str) -> [String; 2] {
    [
        format!(
            "UPDATE history SET status = 3, article_id = NULL, remember_until = {until} \
             WHERE msgid IN (SELECT msgid FROM articles WHERE id IN ({ids}))"
        ),
        format!(
            "INSERT INTO history_recent (msgid, article_id, status, remember_until) \
             SELECT a.msgid, NULL, 3, {until} FROM articles a WHERE a.id IN ({ids}) \
             AND NOT EXISTS (SELECT 1 FROM history h WHERE h.msgid = a.msgid) \
             ON CONFLICT (msgid) DO UPDATE SET status = 3, article_id = NULL, \
             remember_until = excluded.remember_until"
        ),
    ]
}

/// Makes the database file at least `bytes` long (`storage.preallocate_mib`),
/// the room as free pages, which SQLite hands to new rows before it grows
/// the file. The pages are written once now, straight into the file (in
/// the rollback journal's mode: in WAL mode each would go through the log
/// and be copied again), as INN writes its CNFS buffers whole when they
/// are made. Besides reserving the disk space, it makes articles cheaper
/// to store while they fill it: on the 2-core test VM, page cache for a
/// file that grows costs ~7 µs per 4 KiB page the first time (the VM
/// hands memory freed for ~10 s back to its host), where pages already
/// cached are overwritten at ~1 µs; streamed 2 KiB articles take ~1 page
/// each.
///
/// Needs the database to itself to leave WAL mode: if another process
/// has it open, it says so and leaves the file as it is.
async fn preallocate(conn: &mut sqlx::SqliteConnection, bytes: u64) -> Result<()> {
    // A run stopped short may have left the table: its pages are room too.
    sqlx::query("DROP TABLE IF EXISTS preallocated")
        .execute(&mut *conn)
        .await?;
    let (page_size, pages): (i64, i64) =
        sqlx::query_as("SELECT page_size, page_count FROM pragma_page_size(), pragma_page_count()")
            .fetch_one(&mut *conn)
            .await?;
    let page = page_size.max(512) as u64;
    let missing = bytes.saturating_sub(pages.max(0) as u64 * page) / page;
    if missing == 0 {
        return Ok(());
    }
    let started = std::time::Instant::now();
    // Refused (busy), or left as it was, while another process has the
    // database open: the file stays as it is.
    let mode: std::result::Result<String, _> = sqlx::query_scalar("PRAGMA journal_mode = DELETE")
        .fetch_one(&mut *conn)
        .await;
    if !mode
        .as_ref()
        .is_ok_and(|m| m.eq_ignore_ascii_case("delete"))
    {
        let why = match mode {
            Ok(m) => format!("journal mode stays {m}"),
            Err(e) => e.to_string(),
        };
        tracing::warn!(
            "the database is in use by another process ({why}): not preallocated ({} MiB asked)",
            bytes >> 20
        );
        return Ok(());
    }
    let made = async {
        sqlx::query("CREATE TABLE preallocated (room BLOB)")
            .execute(&mut *conn)
            .await?;
        // A row of a little less than a page fills one leaf page.
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
             INSERT INTO preallocated SELECT zeroblob(?2) FROM n",
        )
        .bind(missing as i64)
        .bind(page_size - 100)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DROP TABLE preallocated")
            .execute(&mut *conn)
            .await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if let Err(e) = &made {
        // A full disk, say: the server runs on without the room.
        tracing::warn!("preallocating {} MiB failed: {e}", bytes >> 20);
        sqlx::query("DROP TABLE IF EXISTS preallocated")
            .execute(&mut *conn)
            .await?;
    }
    let back: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
        .fetch_one(&mut *conn)
        .await?;
    if !back.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Io {
            path: "the database".into(),
            source: std::io::Error::other(format!(
                "journal mode is {back} after preallocating, not wal"
            )),
        });
    }
    if made.is_err() {
        return Ok(());
    }
    let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
        .fetch_one(&mut *conn)
        .await?;
    tracing::info!(
        mib = bytes >> 20,
        free_mib = (free.max(0) as u64 * page) >> 20,
        millis = started.elapsed().as_millis() as u64,
        "database preallocated"
    );
    Ok(())
}

/// The two tables of history (migrations/0008_history_recent.sql).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryLevel {
    /// `history_recent`: where the tail is merged; small.
    Recent,
    /// `history`: where the recent rows are folded, in rare sorted passes.
    Folded,
}

impl HistoryLevel {
    /// Both, in the order a walk of all of history reads them: an id
    /// leaves the recent table only in the transaction that writes it to
    /// the folded one, so read this way none slips between the two.
    pub const WALK: [HistoryLevel; 2] = [HistoryLevel::Recent, HistoryLevel::Folded];

    fn table(self) -> &'static str {
        match self {
            HistoryLevel::Recent => "history_recent",
            HistoryLevel::Folded => "history",
        }
    }
}

/// The articles of the history tail (`tail`), in SQL: those after
/// `history_through`. A range of the log's key, so a scan of it reads only
/// the newest articles.
pub(crate) const TAIL_ARTICLES: &str =
    "articles WHERE id > (SELECT value FROM meta WHERE key = 'history_through')";

impl Store {
    /// Opens (creating if needed) the database at `path` and applies the
    /// migrations. Returns whether the database was created just now.
    pub async fn open(config: &StorageConfig) -> Result<(Store, bool)> {
        raw::quiet_memory_statistics();
        let path = config.database.as_path();
        let synchronous = config.synchronous;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let created = !path.exists();
        // Migrate on a connection of its own first, so the readers never see
        // a half-made schema.
        let mut conn = base_options(path, synchronous).connect().await?;
        sqlx::migrate!("./migrations").run(&mut conn).await?;
        let room = match config.max_size_mib {
            0 => config.preallocate_mib,
            most => config.preallocate_mib.min(most),
        };
        if room > 0 {
            preallocate(&mut conn, room << 20).await?;
        }
        drop(conn);

        let options = base_options(path, synchronous)
            .pragma("mmap_size", config.mmap_size.to_string())
            .pragma("cache_size", format!("-{}", config.read_cache_kib));
        let pool = SqlitePoolOptions::new()
            .max_connections(config.read_connections)
            .min_connections(1)
            // A ping per acquire doubles a point read's cost (STORAGE-NOTES.md).
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok((
            Store {
                pool,
                path: path.to_owned(),
                synchronous,
                write_cache_kib: config.write_cache_kib,
                tail: Arc::default(),
                visibility: Arc::default(),
                bodies: Arc::new(bodies::Bodies::new(bodies::directory(path))),
                body_min_bytes: config.body_min_bytes,
                body_segment_bytes: config.body_segment_mib.saturating_mul(1 << 20),
            },
            created,
        ))
    }

    /// A dedicated connection for the ingest writer, with a page cache that
    /// holds a whole batch (STORAGE-NOTES.md "Tuned"). Its checkpoints are
    /// the ingest's own (`ingest::checkpoint`): most WAL frames are copied
    /// by a thread of their own, and the writer restarts the WAL.
    ///
    /// It runs with `synchronous=NORMAL` whatever the configuration says:
    /// with `full`, ingest makes each commit durable itself by syncing the
    /// WAL file (`wal_path`) on another thread while the next batch is
    /// written, and acknowledges only after that sync. NORMAL still syncs the
    /// WAL before every checkpoint, so a checkpoint never copies frames that
    /// are not on disk.
    ///
    /// Its WAL is written through `walvfs`: a commit's frames gathered
    /// into a few large writes, not two system calls each.
    pub async fn writer_connection(&self) -> Result<SqliteConnection> {
        let mut options = base_options(&self.path, Synchronous::Normal)
            .pragma("cache_size", format!("-{}", self.write_cache_kib));
        match walvfs::register() {
            Ok(()) => options = options.vfs(walvfs::NAME),
            Err(e) => tracing::warn!("the writer's WAL is written frame by frame: {e}"),
        }
        Ok(options.connect().await?)
    }

    /// A connection for the checkpoint thread (`ingest::checkpoint`): it
    /// only copies WAL frames into the database, so it needs no cache.
    pub async fn checkpoint_connection(&self) -> Result<SqliteConnection> {
        Ok(base_options(&self.path, Synchronous::Normal)
            .connect()
            .await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- groups ----------------------------------------------------------

    fn group_from_row(row: &sqlx::sqlite::SqliteRow) -> GroupInfo {
        let status: String = row.get("status");
        GroupInfo {
            id: row.get("id"),
            name: row.get("name"),
            status: status.chars().next().unwrap_or('y'),
            description: row.get("description"),
            low: row.get::<i64, _>("low").max(0) as u64,
            high: row.get::<i64, _>("high").max(0) as u64,
            count: row.get::<i64, _>("count").max(0) as u64,
            created: row.get("created"),
            creator: row.get("creator"),
        }
    }

    const GROUP_COLUMNS: &'static str =
        "id, name, status, description, low, high, count, created, creator";

    pub async fn group(&self, name: &str) -> Result<Option<GroupInfo>> {
        self.visibility.wait().await;
        self.group_as_written(name).await
    }

    /// The group as the overview stands, without waiting for the rows the
    /// writer has queued (`overview`): for the control-message reader,
    /// which follows the overview as it is written.
    pub async fn group_as_written(&self, name: &str) -> Result<Option<GroupInfo>> {
        let sql = format!("SELECT {} FROM groups WHERE name = ?1", Self::GROUP_COLUMNS);
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(Self::group_from_row))
    }

    /// All groups, sorted by name.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>> {
        self.visibility.wait().await;
        let sql = format!("SELECT {} FROM groups ORDER BY name", Self::GROUP_COLUMNS);
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(Self::group_from_row).collect())
    }

    /// Groups created at or after `since` (Unix seconds).
    pub async fn groups_created_since(&self, since: i64) -> Result<Vec<GroupInfo>> {
        let sql = format!(
            "SELECT {} FROM groups WHERE created >= ?1 ORDER BY name",
            Self::GROUP_COLUMNS
        );
        let rows = sqlx::query(&sql).bind(since).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(Self::group_from_row).collect())
    }

    pub async fn add_group(
        &self,
        name: &GroupName,
        status: char,
        description: &str,
        creator: &str,
    ) -> Result<GroupInfo> {
        let now = chrono::Utc::now().timestamp();
        let done = sqlx::query(
            "INSERT INTO groups (name, status, description, created, creator) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.as_str())
        .bind(status.to_string())
        .bind(description)
        .bind(now)
        .bind(creator)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::GroupExists(name.to_string()));
        }
        self.group(name.as_str())
            .await?
            .ok_or_else(|| StoreError::NoSuchGroup(name.to_string()))
    }

    /// Creates the groups of `groups` that are not here yet, and gives
    /// `descriptions` to the groups here that have none, all in one
    /// transaction; with `dry_run` it is rolled back, so only the counts
    /// are left. Existing groups keep their status and description. Names
    /// must be unique within each list.
    pub async fn import_groups(
        &self,
        groups: &[(&str, char)],
        descriptions: &[(&str, &str)],
        creator: &str,
        dry_run: bool,
    ) -> Result<GroupImport> {
        // Each list goes in as one JSON array: a statement per group costs
        // a round trip to sqlx's connection thread each, 30,000 groups
        // some 10 s on the test VM, where these take well under one.
        let groups = serde_json::Value::from_iter(
            groups
                .iter()
                .map(|&(name, status)| serde_json::json!([name, status.to_string()])),
        )
        .to_string();
        let descriptions = serde_json::Value::from_iter(
            descriptions
                .iter()
                .map(|&(name, text)| serde_json::json!([name, text])),
        )
        .to_string();
        let now = chrono::Utc::now().timestamp();
        let mut tx = self.pool.begin().await?;
        let listed: i64 = sqlx::query_scalar("SELECT count(*) FROM json_each(?1)")
            .bind(&groups)
            .fetch_one(&mut *tx)
            .await?;
        let created = sqlx::query(
            "INSERT INTO groups (name, status, description, created, creator) \
             SELECT value ->> 0, value ->> 1, '', ?2, ?3 FROM json_each(?1) WHERE true \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&groups)
        .bind(now)
        .bind(creator)
        .execute(&mut *tx)
        .await?
        .rows_affected() as usize;
        let (not_carried, kept): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE g.name IS NULL), \
                    count(*) FILTER (WHERE g.description NOT IN ('', d.value ->> 1)) \
             FROM json_each(?1) AS d LEFT JOIN groups AS g ON g.name = d.value ->> 0",
        )
        .bind(&descriptions)
        .fetch_one(&mut *tx)
        .await?;
        let described = sqlx::query(
            "UPDATE groups SET description = d.value ->> 1 FROM json_each(?1) AS d \
             WHERE groups.name = d.value ->> 0 AND groups.description = ''",
        )
        .bind(&descriptions)
        .execute(&mut *tx)
        .await?
        .rows_affected() as usize;
        let done = GroupImport {
            created,
            existing: (listed as usize).saturating_sub(created),
            described,
            kept: kept as usize,
            not_carried: not_carried as usize,
        };
        if dry_run {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(done)
    }

    /// Changes a group's status and/or description.
    pub async fn set_group(
        &self,
        name: &str,
        status: Option<char>,
        description: Option<&str>,
    ) -> Result<GroupInfo> {
        let done = sqlx::query(
            "UPDATE groups SET status = coalesce(?2, status), \
             description = coalesce(?3, description) WHERE name = ?1",
        )
        .bind(name)
        .bind(status.map(|c| c.to_string()))
        .bind(description)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchGroup(name.to_owned()));
        }
        self.group(name)
            .await?
            .ok_or_else(|| StoreError::NoSuchGroup(name.to_owned()))
    }

    /// Removes a group and its article numbers. Articles that were in no
    /// other group are deleted; their message-ids stay in history (status
    /// removed) until `remember_until`, so a peer cannot feed them back
    /// meanwhile. Returns the articles deleted.
    pub async fn remove_group(&self, name: &str, remember_until: i64) -> Result<u64> {
        // The writer's queued rows first (`overview`): the group's
        // articles are found by them.
        self.visibility.wait().await;
        // IMMEDIATE: it reads before it writes, beside a live writer.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM groups WHERE name = ?1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            return Err(StoreError::NoSuchGroup(name.to_owned()));
        };
        sqlx::query("CREATE TEMP TABLE IF NOT EXISTS doomed (article_id INTEGER PRIMARY KEY)")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM temp.doomed")
            .execute(&mut *tx)
            .await?;
        keep_log_head(&mut tx).await?;
        sqlx::query("INSERT INTO temp.doomed SELECT article_id FROM overview WHERE group_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // And those whose rows a live writer still queues (`overview`):
        // found by their Xref, and doomed unless it names a group that
        // stays (where their rows will be).
        let queued: Vec<(i64, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT id, bytes FROM {}",
            overview::QUEUED_ARTICLES
        ))
        .fetch_all(&mut *tx)
        .await?;
        for (article, bytes) in queued {
            let groups = crate::article::xref_entries(&bytes);
            if !groups.iter().any(|(g, _)| g == name) {
                continue;
            }
            let mut stays = false;
            for (g, _) in groups.iter().filter(|(g, _)| g != name) {
                stays = sqlx::query("SELECT 1 FROM groups WHERE name = ?1")
                    .bind(g)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
                if stays {
                    break;
                }
            }
            if !stays {
                sqlx::query("INSERT OR IGNORE INTO temp.doomed VALUES (?1)")
                    .bind(article)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("DELETE FROM overview WHERE group_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM groups WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Cross-posted articles live on in their other groups.
        sqlx::query(
            "DELETE FROM temp.doomed WHERE article_id IN (SELECT article_id FROM overview)",
        )
        .execute(&mut *tx)
        .await?;
        for sql in remember_removed("SELECT article_id FROM temp.doomed", "?1") {
            sqlx::query(&sql)
                .bind(remember_until)
                .execute(&mut *tx)
                .await?;
        }
        let deleted =
            sqlx::query("DELETE FROM articles WHERE id IN (SELECT article_id FROM temp.doomed)")
                .execute(&mut *tx)
                .await?
                .rows_affected();
        sqlx::query("DELETE FROM temp.doomed")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    // ---- articles --------------------------------------------------------

    pub async fn article_by_number(
        &self,
        group_id: i64,
        number: u64,
    ) -> Result<Option<StoredArticle>> {
        self.visibility.wait().await;
        let row = sqlx::query(&format!(
            "SELECT a.id, a.msgid, a.bytes, {} FROM overview o \
             JOIN articles a ON a.id = o.article_id \
             WHERE o.group_id = ?1 AND o.number = ?2",
            bodies::columns("a")
        ))
        .bind(group_id)
        .bind(number as i64)
        .fetch_optional(&self.pool)
        .await?;
        self.stored_article(row).await
    }

    /// The article of a row of id, message-id, bytes and body place
    /// (`bodies::columns`), its body read back if it is in a segment.
    async fn stored_article(
        &self,
        row: Option<sqlx::sqlite::SqliteRow>,
    ) -> Result<Option<StoredArticle>> {
        let Some(r) = row else {
            return Ok(None);
        };
        let id: i64 = r.get(0);
        let place = body_place(&r, 3);
        let (msgid, bytes) = match self.whole(vec![(r.get(1), r.get(2), place)]).await {
            Ok(mut whole) => whole.pop().unwrap_or_default(),
            // An expiry or a cancel may have removed the article since
            // its row was read, and the writer filled its segment again:
            // then the article is gone, not damaged.
            Err(e @ StoreError::Body(_)) => match self.still_stored(id, place).await? {
                true => return Err(e),
                false => return Ok(None),
            },
            Err(e) => return Err(e),
        };
        Ok(Some(StoredArticle { id, msgid, bytes }))
    }

    /// Whether article `id` is still stored with its body at `place`.
    async fn still_stored(&self, id: i64, place: Option<bodies::BodyPlace>) -> Result<bool> {
        let (seg, off) = place.map_or((None, None), |p| (Some(p.seg), Some(p.off as i64)));
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM articles WHERE id = ?1 AND body_seg IS ?2 AND body_off IS ?3",
        )
        .bind(id)
        .bind(seg)
        .bind(off)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Whole articles from what their rows hold (with anything beside,
    /// `T`): where a body is in a segment it is read and appended, on a
    /// blocking thread, as a read from disk may take a while.
    async fn whole<T: Send + 'static>(
        &self,
        rows: Vec<(T, Vec<u8>, Option<bodies::BodyPlace>)>,
    ) -> Result<Vec<(T, Vec<u8>)>> {
        if rows.iter().all(|(_, _, place)| place.is_none()) {
            return Ok(rows.into_iter().map(|(t, b, _)| (t, b)).collect());
        }
        let bodies = self.bodies.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(rows.len());
            for (t, mut bytes, place) in rows {
                if let Some(p) = place {
                    bodies.read_into(&p, &mut bytes)?;
                }
                out.push((t, bytes));
            }
            Ok::<_, bodies::BodyError>(out)
        })
        .await
        .map_err(|e| StoreError::BodyTask(e.to_string()))?;
        Ok(joined?)
    }

    pub async fn article_by_msgid(&self, msgid: &MessageId) -> Result<Option<StoredArticle>> {
        let columns = bodies::columns("");
        let in_history = format!(
            "SELECT a.id, a.msgid, a.bytes, {} FROM history_all h \
             JOIN articles a ON a.id = h.article_id WHERE h.msgid = ?1 AND h.status = 0",
            bodies::columns("a")
        );
        // The tail first: an id leaves it only once history has it.
        let row = if !self.tail.is_live() {
            sqlx::query(&format!(
                "{in_history} UNION ALL SELECT id, msgid, bytes, {columns} FROM {TAIL_ARTICLES} \
                 AND msgid = ?1 LIMIT 1"
            ))
            .bind(msgid.as_str())
            .fetch_optional(&self.pool)
            .await?
        } else {
            // A tail hit is read by its log id straight away; gone (an
            // expiry took it), history says what became of it.
            let in_tail = match self.tail.get(msgid.as_str()) {
                Some(id) => {
                    sqlx::query(&format!(
                        "SELECT id, msgid, bytes, {columns} FROM articles WHERE id = ?1"
                    ))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                }
                None => None,
            };
            match in_tail {
                Some(row) => Some(row),
                None => {
                    sqlx::query(&in_history)
                        .bind(msgid.as_str())
                        .fetch_optional(&self.pool)
                        .await?
                }
            }
        };
        self.stored_article(row).await
    }

    /// The message-id of article `number` of a group (STAT, LAST, NEXT).
    pub async fn msgid_by_number(&self, group_id: i64, number: u64) -> Result<Option<String>> {
        self.visibility.wait().await;
        let id = sqlx::query_scalar(
            "SELECT a.msgid FROM overview o JOIN articles a ON a.id = o.article_id \
             WHERE o.group_id = ?1 AND o.number = ?2",
        )
        .bind(group_id)
        .bind(number as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id)
    }

    /// Whether a message-id names an article we store.
    pub async fn has_article(&self, msgid: &MessageId) -> Result<bool> {
        self.stored_or_in(
            msgid,
            "SELECT 1 FROM history_all WHERE msgid = ?1 AND status = 0",
        )
        .await
    }

    /// Whether a message-id is known at all (stored, refused or expired).
    pub async fn seen(&self, msgid: &MessageId) -> Result<bool> {
        self.stored_or_in(msgid, "SELECT 1 FROM history_all WHERE msgid = ?1")
            .await
    }

    /// Whether `msgid` is stored in the tail, or else found by
    /// `in_history` (a query of history with the id as ?1).
    async fn stored_or_in(&self, msgid: &MessageId, in_history: &str) -> Result<bool> {
        let query = if !self.tail.is_live() {
            format!("{in_history} UNION ALL SELECT 1 FROM {TAIL_ARTICLES} AND msgid = ?1 LIMIT 1")
        } else if self.tail_stored(msgid.as_str()).await?.is_some() {
            return Ok(true);
        } else {
            in_history.to_owned()
        };
        let found: Option<i64> = sqlx::query_scalar(&query)
            .bind(msgid.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// The secret `name` (see migrations/0007_secrets.sql), made now with
    /// the operating system's random generator if it does not exist yet:
    /// 32 octets, the length of a SHA-256 HMAC key.
    pub async fn secret(&self, name: &str) -> Result<Vec<u8>> {
        let mut fresh = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh).map_err(
            |_| StoreError::Io {
                path: "the random generator".into(),
                source: std::io::Error::other("no random octets"),
            },
        )?;
        // Two processes starting at once: the first one's secret stays.
        sqlx::query("INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(fresh.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The last number of control group `group` that `control` has read;
    /// `None` before it first looked.
    pub async fn control_cursor(&self, group: &str) -> Result<Option<u64>> {
        let n: Option<i64> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
            .bind(control_cursor_key(group))
            .fetch_optional(&self.pool)
            .await?;
        Ok(n.map(|n| n.max(0) as u64))
    }

    pub async fn set_control_cursor(&self, group: &str, number: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(control_cursor_key(group))
        .bind(number as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The Cancel-Lock secrets of this server's posts (RFC 8315), made on
    /// first use.
    pub async fn cancel_secrets(&self) -> Result<crate::article::cancel_lock::Secrets> {
        Ok(crate::article::cancel_lock::Secrets {
            user: self.secret("cancel_lock").await?,
            admin: self.secret("cancel_lock_admin").await?,
        })
    }

    /// How many message-ids history holds, its tail included.
    pub async fn history_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT (SELECT count(*) FROM history_all) + (SELECT count(*) FROM {TAIL_ARTICLES})"
        ))
        .fetch_one(&self.pool)
        .await?)
    }

    /// The history tail of this process (see `tail`).
    pub fn bodies(&self) -> &Arc<bodies::Bodies> {
        &self.bodies
    }

    /// Where the writer keeps bodies of how many octets
    /// (`storage.body_min_bytes`, 0: none), and the size of a segment.
    pub fn body_sizes(&self) -> (usize, u64) {
        (self.body_min_bytes, self.body_segment_bytes)
    }

    pub fn tail(&self) -> &Arc<tail::Tail> {
        &self.tail
    }

    /// Where this process's overview stands (see `overview`).
    pub fn visibility(&self) -> &Arc<overview::Visibility> {
        &self.visibility
    }

    /// The log id of `msgid` if it is in the live tail and still stored.
    /// An expiry (in this process or the admin CLI) may have removed it
    /// since; it then wrote the id's history row, so look there.
    async fn tail_stored(&self, msgid: &str) -> Result<Option<i64>> {
        let Some(id) = self.tail.get(msgid) else {
            return Ok(None);
        };
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM articles WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found)
    }

    /// Up to `limit` message-ids of history after `after` in key order (a
    /// walk of the whole of history, a chunk at a time), as one string with
    /// an id per line (a message-id holds no line break), in no particular
    /// order: the chunk's largest id is where the next one starts. One row
    /// per chunk, where a row per id cost sqlx ~1.5 µs each. Empty past the
    /// end.
    pub async fn history_ids_after(
        &self,
        level: HistoryLevel,
        after: &str,
        limit: i64,
    ) -> Result<String> {
        let ids: Option<String> = sqlx::query_scalar(&format!(
            "SELECT group_concat(msgid, char(10)) FROM \
             (SELECT msgid FROM {} WHERE msgid > ?1 ORDER BY msgid LIMIT ?2)",
            level.table()
        ))
        .bind(after)
        .bind(limit)
        .fetch_one(&self.pool)
        .await?;
        Ok(ids.unwrap_or_default())
    }

    /// The next article after `number` (NEXT) or before it (LAST):
    /// (number, message-id).
    pub async fn neighbour(
        &self,
        group_id: i64,
        number: u64,
        forward: bool,
    ) -> Result<Option<(u64, String)>> {
        self.visibility.wait().await;
        let sql = if forward {
            "SELECT o.number, a.msgid FROM overview o JOIN articles a ON a.id = o.article_id \
             WHERE o.group_id = ?1 AND o.number > ?2 ORDER BY o.number ASC LIMIT 1"
        } else {
            "SELECT o.number, a.msgid FROM overview o JOIN articles a ON a.id = o.article_id \
             WHERE o.group_id = ?1 AND o.number < ?2 ORDER BY o.number DESC LIMIT 1"
        };
        let row = sqlx::query(sql)
            .bind(group_id)
            .bind(number as i64)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get::<i64, _>(0) as u64, r.get(1))))
    }

    /// LISTGROUP's block: the numbers in `range`, one per CRLF line, built in
    /// SQL as one row (STORAGE-NOTES.md: 7x faster than a row per number).
    pub async fn list_numbers(&self, group_id: i64, range: Range) -> Result<Vec<u8>> {
        self.range_block("number", group_id, range).await
    }

    /// OVER's block: `number TAB overview-line` for each article in `range`,
    /// built in SQL as one row.
    pub async fn overview_block(&self, group_id: i64, range: Range) -> Result<Vec<u8>> {
        self.range_block("number || char(9) || line", group_id, range)
            .await
    }

    /// `each` (an SQL expression over overview's columns) for every article
    /// of a group in `range`, joined into one block of CRLF lines.
    async fn range_block(
        &self,
        each: &'static str,
        group_id: i64,
        range: Range,
    ) -> Result<Vec<u8>> {
        self.visibility.wait().await;
        let sql = format!(
            "SELECT group_concat({each}, char(13, 10)) FROM overview \
             WHERE group_id = ?1 AND number BETWEEN ?2 AND ?3"
        );
        let text: Option<String> = sqlx::query_scalar(&sql)
            .bind(group_id)
            .bind(range.low as i64)
            .bind(range.high_or_max() as i64)
            .fetch_one(&self.pool)
            .await?;
        Ok(crlf_block(text))
    }

    /// (number, overview line) for each article in `range` (HDR, XPAT).
    pub async fn overview_rows(&self, group_id: i64, range: Range) -> Result<Vec<(u64, String)>> {
        self.visibility.wait().await;
        let rows = sqlx::query(
            "SELECT number, line FROM overview WHERE group_id = ?1 AND number BETWEEN ?2 AND ?3",
        )
        .bind(group_id)
        .bind(range.low as i64)
        .bind(range.high_or_max() as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<i64, _>(0) as u64, r.get(1)))
            .collect())
    }

    /// The overview line of article `number` of a group.
    pub async fn overview_line(&self, group_id: i64, number: u64) -> Result<Option<String>> {
        self.visibility.wait().await;
        let line =
            sqlx::query_scalar("SELECT line FROM overview WHERE group_id = ?1 AND number = ?2")
                .bind(group_id)
                .bind(number as i64)
                .fetch_optional(&self.pool)
                .await?;
        Ok(line)
    }

    /// (number, article bytes) for each article in `range`, for HDR/XPAT of
    /// headers that are not in the overview. At most `limit` rows.
    pub async fn articles_in_range(
        &self,
        group_id: i64,
        range: Range,
        limit: i64,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        self.visibility.wait().await;
        self.articles_in_range_as_written(group_id, range, limit)
            .await
    }

    /// `articles_in_range` as the overview stands, without waiting for
    /// the rows the writer has queued (see `group_as_written`).
    pub async fn articles_in_range_as_written(
        &self,
        group_id: i64,
        range: Range,
        limit: i64,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows = sqlx::query(&format!(
            "SELECT o.number, a.bytes, {} FROM overview o \
             JOIN articles a ON a.id = o.article_id \
             WHERE o.group_id = ?1 AND o.number BETWEEN ?2 AND ?3 LIMIT ?4",
            bodies::columns("a")
        ))
        .bind(group_id)
        .bind(range.low as i64)
        .bind(range.high_or_max() as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let rows = rows
            .iter()
            .map(|r| (r.get::<i64, _>(0) as u64, r.get(1), body_place(r, 2)))
            .collect();
        self.whole(rows).await
    }

    /// Message-ids of articles that arrived at or after `since` in the given
    /// groups (NEWNEWS), without duplicates.
    pub async fn new_news(&self, group_ids: &[i64], since: i64) -> Result<Vec<String>> {
        self.visibility.wait().await;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for &group_id in group_ids {
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT a.msgid FROM overview o JOIN articles a ON a.id = o.article_id \
                 WHERE o.group_id = ?1 AND o.arrived >= ?2",
            )
            .bind(group_id)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
            for id in ids {
                if seen.insert(id.clone()) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    pub async fn stats(&self) -> Result<Stats> {
        let size = bodies::size_sql("");
        let sql = format!(
            "SELECT (SELECT count(*) FROM groups), \
                    (SELECT count(*) FROM articles), \
                    (SELECT coalesce(sum({size}), 0) FROM articles), \
                    (SELECT count(*) FROM history_all) + (SELECT count(*) FROM {TAIL_ARTICLES}), \
                    {LAST_ARTICLE_ID}, \
                    (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()), \
                    (SELECT count(*) FROM body_segments), \
                    (SELECT coalesce(sum(live), 0) FROM body_segments), \
                    (SELECT count(*) FROM body_segments WHERE live <= 0), \
                    (SELECT freelist_count * page_size FROM pragma_freelist_count(), pragma_page_size())"
        );
        let row = sqlx::query(&sql).fetch_one(&self.pool).await?;
        let body_segment_bytes = bodies::bytes_in(self.bodies.dir());
        Ok(Stats {
            body_segments: row.get(6),
            articles_with_body_apart: row.get(7),
            free_body_segments: row.get(8),
            body_segment_bytes,
            groups: row.get(0),
            articles: row.get(1),
            article_bytes: row.get(2),
            history: row.get(3),
            last_article_id: row.get(4),
            database_bytes: row.get(5),
            free_bytes: row.get(9),
        })
    }

    /// What history remembers of a message-id that is not stored (or no
    /// longer): its status (1 refused, 2 cancelled, 3 expired or removed)
    /// and until when it is remembered. `None`: never seen, or forgotten.
    pub async fn history_of(&self, msgid: &MessageId) -> Result<Option<(i64, Option<i64>)>> {
        Ok(sqlx::query_as(
            "SELECT status, remember_until FROM history_all WHERE msgid = ?1 AND status != 0",
        )
        .bind(msgid.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Writes a consistent copy of the database to `to`, a file that must
    /// not exist (SQLite's VACUUM INTO: a read transaction, so the writer
    /// goes on meanwhile, and the copy holds exactly what was committed
    /// when it began, compacted).
    pub async fn backup(&self, to: &Path) -> Result<()> {
        let Some(to) = to.to_str() else {
            return Err(StoreError::Io {
                path: to.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the backup's path must be UTF-8",
                ),
            });
        };
        sqlx::query("VACUUM INTO ?1")
            .bind(to)
            .execute(&self.pool)
            .await?;
        self.backup_bodies(Path::new(to)).await
    }

    /// Copies the body segments (`bodies`) the backup at `to` refers to,
    /// as far as its articles' bodies go, into its own segment directory,
    /// and checks every body there against its CRC: a segment filled again
    /// between the snapshot and the copy fails the backup, to be run again.
    async fn backup_bodies(&self, to: &Path) -> Result<()> {
        // Nothing else has the new file open, nor changes it.
        let mut conn = SqliteConnectOptions::new()
            .filename(to)
            .read_only(true)
            .immutable(true)
            .connect()
            .await?;
        let segments: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT body_seg, max(body_off + body_len) FROM articles \
             WHERE body_seg IS NOT NULL GROUP BY body_seg",
        )
        .fetch_all(&mut conn)
        .await?;
        if segments.is_empty() {
            return Ok(());
        }
        let from = self.bodies.dir().to_owned();
        let into = bodies::directory(to);
        tokio::task::spawn_blocking({
            let into = into.clone();
            move || bodies::copy_segments(&from, &into, &segments)
        })
        .await
        .map_err(|e| StoreError::BodyTask(e.to_string()))??;
        let copied = Arc::new(bodies::Bodies::new(into));
        let mut after = 0;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT id, {} FROM articles WHERE id > ?1 AND body_seg IS NOT NULL \
                 ORDER BY id LIMIT 1000",
                bodies::columns("")
            ))
            .bind(after)
            .fetch_all(&mut conn)
            .await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.get(0);
            let places: Vec<_> = rows.iter().filter_map(|r| body_place(r, 1)).collect();
            let copied = copied.clone();
            tokio::task::spawn_blocking(move || {
                let mut body = Vec::new();
                for p in &places {
                    body.clear();
                    copied.read_into(p, &mut body)?;
                }
                Ok::<_, bodies::BodyError>(())
            })
            .await
            .map_err(|e| StoreError::BodyTask(e.to_string()))?
            .map_err(|e| {
                StoreError::BodyTask(format!(
                    "{e}: a segment was filled again during the backup; run it again"
                ))
            })?;
        }
        sqlx::Connection::close(conn).await?;
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The write-ahead log beside the database file.
    pub fn wal_path(&self) -> PathBuf {
        let mut p = self.path.as_os_str().to_owned();
        p.push("-wal");
        PathBuf::from(p)
    }

    /// Whether acknowledged articles must survive a machine crash.
    pub fn synchronous(&self) -> Synchronous {
        self.synchronous
    }
}

/// A group_concat result as a block of CRLF lines (empty for no rows).
fn crlf_block(text: Option<String>) -> Vec<u8> {
    match text {
        Some(t) if !t.is_empty() => {
            let mut v = t.into_bytes();
            v.extend_from_slice(b"\r\n");
            v
        }
        _ => Vec::new(),
    }
}

impl Store {
    /// Which of `ids` history knows (stored, refused or expired): one
    /// statement for a whole batch of CHECKs.
    pub async fn seen_many(&self, ids: &[String]) -> Result<std::collections::HashSet<String>> {
        let live = self.tail.is_live();
        let mut known = std::collections::HashSet::new();
        if live {
            // Tail hits still stored, one statement for them all (a peer
            // re-offering what another peer just sent hits the tail).
            let hits: Vec<(&String, i64)> = ids
                .iter()
                .filter_map(|m| self.tail.get(m).map(|id| (m, id)))
                .collect();
            if !hits.is_empty() {
                let list = hits
                    .iter()
                    .map(|(_, id)| id.to_string())
                    .collect::<Vec<_>>();
                let stored: std::collections::HashSet<i64> = sqlx::query_scalar(
                    "SELECT id FROM articles WHERE id IN (SELECT value FROM json_each(?1))",
                )
                .bind(format!("[{}]", list.join(",")))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect();
                known.extend(
                    hits.into_iter()
                        .filter(|(_, id)| stored.contains(id))
                        .map(|(m, _)| m.clone()),
                );
            }
        }
        let asked: Vec<String> = ids
            .iter()
            .filter(|id| !known.contains(*id))
            .cloned()
            .collect();
        for chunk in asked.chunks(500) {
            let mut list = String::new();
            for i in 0..chunk.len() {
                if i > 0 {
                    list.push(',');
                }
                // Numbered, so the tail's list binds the same values.
                list.push_str(&format!("?{}", i + 1));
            }
            let mut sql = format!("SELECT msgid FROM history_all WHERE msgid IN ({list})");
            if !live {
                sql.push_str(&format!(
                    " UNION SELECT msgid FROM {TAIL_ARTICLES} AND msgid IN ({list})"
                ));
            }
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            known.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with one article (id 1) whose body is in segment 1, and the
    /// article's row as a reader reads it.
    async fn article_apart(dir: &Path) -> (Store, sqlx::sqlite::SqliteRow, PathBuf) {
        let config = crate::config::StorageConfig {
            database: dir.join("t.db"),
            ..Default::default()
        };
        let (store, _) = Store::open(&config).await.expect("open");
        let body = b"The body, kept apart.\r\n".repeat(200);
        let segments = bodies::directory(&config.database);
        std::fs::create_dir_all(&segments).expect("segment directory");
        let segment = bodies::segment_path(&segments, 1);
        std::fs::write(&segment, &body).expect("segment");
        let url = format!("sqlite://{}", config.database.display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        sqlx::query(
            "INSERT INTO articles (id, arrived, msgid, bytes, body_seg, body_off, body_len, body_crc) \
             VALUES (1, 0, '<apart@example>', ?1, 1, 0, ?2, ?3)",
        )
        .bind(b"Message-ID: <apart@example>\r\n\r\n".to_vec())
        .bind(body.len() as i64)
        .bind(i64::from(crc32fast::hash(&body)))
        .execute(&pool)
        .await
        .expect("article row");
        pool.close().await;
        let row = article_row(&store).await;
        (store, row, segment)
    }

    /// Article 1's row, as a reader reads it.
    async fn article_row(store: &Store) -> sqlx::sqlite::SqliteRow {
        sqlx::query(&format!(
            "SELECT id, msgid, bytes, {} FROM articles WHERE id = 1",
            bodies::columns("")
        ))
        .fetch_one(&store.pool)
        .await
        .expect("row")
    }

    #[tokio::test]
    async fn a_body_overwritten_after_its_article_was_removed_reads_as_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, row, segment) = article_apart(dir.path()).await;
        // Removed (its segment's count goes down by the trigger), and the
        // segment filled again with other bodies.
        sqlx::query("DELETE FROM articles WHERE id = 1")
            .execute(&store.pool)
            .await
            .expect("remove");
        let len = std::fs::metadata(&segment).expect("segment").len() as usize;
        std::fs::write(&segment, vec![b'x'; len]).expect("refill");
        assert!(
            store
                .stored_article(Some(row))
                .await
                .expect("read")
                .is_none()
        );
        store.close().await;
    }

    #[tokio::test]
    async fn a_damaged_body_of_a_stored_article_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, row, segment) = article_apart(dir.path()).await;
        let whole = store.stored_article(Some(row)).await.expect("read");
        assert!(whole.is_some_and(|a| a.bytes.ends_with(b"kept apart.\r\n")));
        let len = std::fs::metadata(&segment).expect("segment").len() as usize;
        std::fs::write(&segment, vec![b'x'; len]).expect("damage");
        let read = store.stored_article(Some(article_row(&store).await)).await;
        assert!(matches!(read, Err(StoreError::Body(_))), "{read:?}");
        store.close().await;
    }

    /// What a store's file holds: (file length, free pages, page size,
    /// journal mode), read on a connection of its own.
    async fn file_state(path: &Path) -> (u64, i64, i64, String) {
        let mut conn = base_options(path, Synchronous::Full)
            .connect()
            .await
            .expect("connect");
        let (free, page, mode) = sqlx::query_as(
            "SELECT freelist_count, page_size, journal_mode \
             FROM pragma_freelist_count(), pragma_page_size(), pragma_journal_mode()",
        )
        .fetch_one(&mut conn)
        .await
        .expect("pragmas");
        let len = std::fs::metadata(path).expect("file").len();
        (len, free, page, mode)
    }

    #[tokio::test]
    async fn a_preallocated_database_takes_new_rows_in_its_room() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::config::StorageConfig {
            database: dir.path().join("t.db"),
            preallocate_mib: 8,
            ..Default::default()
        };
        let (store, created) = Store::open(&config).await.expect("open");
        assert!(created);
        let (len, free, page, mode) = file_state(&config.database).await;
        assert!(len >= 8 << 20, "{len} octets");
        assert!(free * page >= 7 << 20, "{free} free pages of {page}");
        assert_eq!(mode, "wal");
        let left: Option<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE name = 'preallocated'")
                .fetch_optional(&store.pool)
                .await
                .expect("schema");
        assert_eq!(left, None);
        let stats = store.stats().await.expect("stats");
        assert_eq!(stats.free_bytes, free * page);
        assert_eq!(stats.database_bytes as u64, len);

        // Rows go into the room: the file does not grow.
        let description = "x".repeat(2000);
        for i in 0..200 {
            let name = GroupName::try_from(format!("local.room{i}").as_str()).expect("name");
            store
                .add_group(&name, 'y', &description, "test")
                .await
                .expect("group");
        }
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&store.pool)
            .await
            .expect("checkpoint");
        let (after, free_after, _, _) = file_state(&config.database).await;
        assert_eq!(after, len, "the file grew");
        assert!(free_after < free, "{free_after} free pages, {free} before");
        store.close().await;

        // Opened again, it is long enough already: nothing is written.
        let (store, created) = Store::open(&config).await.expect("reopen");
        assert!(!created);
        assert_eq!(file_state(&config.database).await.0, len);
        assert_eq!(store.groups().await.expect("groups").len(), 200);
        store.close().await;
    }

    #[tokio::test]
    async fn a_database_in_use_elsewhere_is_opened_without_preallocating() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = crate::config::StorageConfig {
            database: dir.path().join("t.db"),
            ..Default::default()
        };
        let (store, _) = Store::open(&config).await.expect("open");
        let (len, ..) = file_state(&config.database).await;
        // `store`'s connections keep the file open in WAL mode.
        config.preallocate_mib = 8;
        let (second, _) = Store::open(&config).await.expect("open beside it");
        let (len_after, _, _, mode) = file_state(&config.database).await;
        assert_eq!(len_after, len);
        assert_eq!(mode, "wal");
        second.close().await;
        store.close().await;
    }
}
