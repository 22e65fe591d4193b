//! What an operator sees of the database files while the server runs.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, article, reader};

/// Committed articles reach the database file itself soon after they are
/// acknowledged (the checkpoint thread copies the WAL ahead of the
/// writer), not only once the WAL is due to go round (here at ~48 MiB);
/// and the server stops cleanly with that thread running.
#[tokio::test]
async fn committed_articles_are_copied_into_the_database_file_soon() {
    let s = TestServer::start_with(|c| c.storage.wal_size_mib = 64).await;
    let db = s.db_path();
    let size = || std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    // Let the start-up writes settle into the file first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = size();
    let body = "x".repeat(70) + "\r\n";
    let body = body.repeat(115); // ~8 KiB
    let mut poster = reader(s.addr).await;
    for i in 0..450 {
        let status = poster
            .post(&article("local.test", &format!("copy {i}"), &body))
            .await;
        assert!(status.starts_with("240"), "{status}");
    }
    // 450 posts of ~8 KiB, one commit each (3.7 MB: the thread is nudged
    // once, after 400 commits) are ~2,300 WAL frames, far below where the
    // WAL goes round: only the checkpoint thread copies (the first 400 of)
    // them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while size() < before + 3_000_000 {
        assert!(
            Instant::now() < deadline,
            "database file grew from {before} to {} bytes only",
            size()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = poster.cmd("GROUP local.test").await;
    assert!(status.starts_with("211 450 "), "{status}");
    s.stop().await;
}

/// Streams `n` articles to local.test on a streaming connection, TAKETHIS
/// only, with up to 64 unanswered, and expects 239 for each. Article `i`
/// has message-id `id(i)`, subject "`subject` i" and `body`.
async fn stream_takethis(
    feed: &mut common::Client,
    n: usize,
    id: impl Fn(usize) -> String,
    subject: &str,
    body: &str,
) {
    let commands = (0..n).map(|i| {
        format!(
            "TAKETHIS {m}\r\nPath: origin.test!not-for-mail\r\nFrom: a@example.com\r\n\
             Newsgroups: local.test\r\nSubject: {subject} {i}\r\nMessage-ID: {m}\r\n\
             Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n{body}.\r\n",
            m = id(i)
        )
    });
    common::takethis_all(feed, commands).await;
}

/// A server binary's configuration in `dir`: a peer "p" that may feed from
/// 127.0.0.1, and the group local.test.
fn peer_and_group_config(dir: &std::path::Path) -> std::path::PathBuf {
    common::binary_config(
        dir,
        "t",
        "[[peer]]\nname = \"p\"\npath_identity = \"p.test\"\naccept_from = [\"127.0.0.1\"]\n\
         [[group]]\nname = \"local.test\"\n",
    )
}

/// The WAL's checkpoint sequence number (its header's fourth 32-bit
/// word), which SQLite raises each time the log starts again from the
/// beginning of its file.
fn wal_round(wal: &std::path::Path) -> u32 {
    let header = std::fs::read(wal).expect("read the WAL");
    u32::from_be_bytes(header[12..16].try_into().expect("4 bytes"))
}

/// The WAL file is written in full when the server starts
/// (`storage.wal_size_mib`) and the log goes round inside it rather than
/// growing; a server killed after many rounds, with its log in the middle
/// of the file and zeros or older rounds after it, comes back with every
/// article it acknowledged.
#[tokio::test]
async fn the_wal_goes_round_in_its_file_and_a_killed_server_keeps_every_article() {
    const BIN: &str = env!("CARGO_BIN_EXE_tidings");
    const N: usize = 4000;
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = dir.path().join("t.db-wal");
    let config = peer_and_group_config(dir.path());
    let wal_bytes = common::TEST_WAL_MIB << 20;
    let (mut server, addr) = common::spawn_binary(BIN, &config).await;
    let size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(size() >= wal_bytes, "the WAL has {} bytes at start", size());
    let first_round = wal_round(&wal);

    let mut feed = common::Client::connect(addr).await;
    assert_eq!(feed.cmd("MODE STREAM").await, "203 Streaming permitted");
    let id = |i: usize| format!("<round{i}@wal.test>");
    let body = "y".repeat(72) + "\r\n";
    let body = body.repeat(26); // ~2 KiB, as in a feed
    stream_takethis(&mut feed, N, id, "round", &body).await;
    // ~9 MB of articles went through a 4 MiB log: it went round, and did
    // not grow past what the writer may add while the checkpoint thread
    // catches up (at most four times the point where it goes round).
    assert!(
        wal_round(&wal) > first_round,
        "the WAL never started again from its beginning"
    );
    assert!(size() <= 4 * wal_bytes, "the WAL grew to {} bytes", size());

    server.start_kill().expect("SIGKILL");
    let _ = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;
    let (mut server, addr) = common::spawn_binary(BIN, &config).await;
    let mut c = reader(addr).await;
    let status = c.cmd("GROUP local.test").await;
    assert!(status.starts_with(&format!("211 {N} 1 {N} ")), "{status}");
    for i in (0..N).step_by(7).chain([N - 1]) {
        let m = id(i);
        let (status, lines) = c.cmd_block(&format!("ARTICLE {m}"), "220").await;
        assert!(status.contains(&m), "{status}");
        assert!(
            lines.iter().any(|l| l == &format!("Subject: round {i}")),
            "{m}: {lines:?}"
        );
    }
    let _ = server.kill().await;
}

/// Waits until every stored article has its history row (the writer
/// merges its in-memory tail after a second without articles).
async fn wait_for_merged(db: &std::path::Path, articles: i64) {
    common::wait_for_history(db, |(through, head, rows)| {
        through == head && rows == articles
    })
    .await;
}

/// New articles' message-ids reach the history index in bulk (see
/// `store::tail`): while they wait in the writer's memory, and while a
/// merge runs beside ingest, every one of them is still found by
/// message-id and refused when offered again; in the end history holds a
/// row for each.
#[tokio::test]
async fn new_message_ids_are_known_before_and_after_they_are_merged_into_history() {
    // A short tail: merges start after 40 ids and run beside the posts.
    let s = TestServer::start_with(|c| {
        c.storage.history_tail_ids = 40;
        c.peers = vec![common::peer("p", None, "*")];
    })
    .await;
    let db = s.db_path();
    let mut poster = reader(s.addr).await;
    let mut peer = s.client().await;
    let mut streamer = s.client().await;
    assert_eq!(streamer.cmd("MODE STREAM").await, "203 Streaming permitted");
    let mut ids = Vec::new();
    for i in 0..300 {
        let status = poster
            .post(&article("local.test", &format!("tail {i}"), "body\r\n"))
            .await;
        let id = common::posted_id(&status);
        // At once, from the tail or from history, wherever it is now.
        assert!(
            peer.cmd(&format!("IHAVE {id}")).await.starts_with("435"),
            "{id} offered again was wanted"
        );
        assert_eq!(
            streamer.cmd(&format!("CHECK {id}")).await,
            format!("438 {id}")
        );
        if i % 7 == 0 {
            let (status, _) = poster.cmd_block(&format!("HEAD {id}"), "221").await;
            assert!(status.contains(&id), "{status}");
        }
        ids.push(id);
    }
    let (through, head, _) = common::history_state(&db).await;
    assert!(
        through > 0,
        "no merge ran beside 300 posts ({head} articles)"
    );
    wait_for_merged(&db, 300).await;
    for id in &ids {
        assert!(peer.cmd(&format!("IHAVE {id}")).await.starts_with("435"));
        assert_eq!(
            streamer.cmd(&format!("CHECK {id}")).await,
            format!("438 {id}")
        );
        assert!(poster.cmd(&format!("STAT {id}")).await.starts_with("223"));
    }
    s.stop().await;
}

/// While articles keep coming, the writer merges its tail into history
/// only once the tail is long (`store::tail::merge_length`): merging it
/// every second whatever its length would write history's leaves as often
/// as a short tail does. A second without articles is time to merge it.
#[tokio::test]
async fn the_tail_waits_while_articles_flow_and_is_merged_once_they_stop() {
    const POSTS: i64 = 50;
    let s = TestServer::start().await;
    let db = s.db_path();
    let mut poster = reader(s.addr).await;
    // A post every 50 ms for some 2.5 s: each of the writer's one-second
    // ticks sees articles coming.
    for i in 0..POSTS {
        let status = poster
            .post(&article("local.test", &format!("flow {i}"), "body\r\n"))
            .await;
        assert!(status.starts_with("240"), "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (through, head, _) = common::history_state(&db).await;
    assert_eq!(
        (through, head),
        (0, POSTS),
        "the tail was merged while articles came"
    );
    wait_for_merged(&db, POSTS).await;
    s.stop().await;
}

/// A server killed before it merged its tail into history loses none of
/// it: the admin CLI finds those articles by message-id with the server
/// down, and the restarted server reads the tail back, counts each id once
/// in its message-id filter, refuses the ids when offered again, and
/// merges them.
#[tokio::test]
async fn a_killed_server_reads_its_unmerged_message_ids_back() {
    const BIN: &str = env!("CARGO_BIN_EXE_tidings");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.db");
    let config = peer_and_group_config(dir.path());
    // Posts, then SIGKILL at once; the writer merges after a second
    // without articles, so the last post is nearly always still in memory:
    // try again in the rare case it was merged.
    let mut ids = Vec::new();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (mut server, addr) = common::spawn_binary(BIN, &config).await;
        let mut poster = reader(addr).await;
        for i in 0..20 {
            let status = poster
                .post(&article("local.test", &format!("kill {i}"), "body\r\n"))
                .await;
            ids.push(common::posted_id(&status));
        }
        server.start_kill().expect("SIGKILL");
        let _ = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;
        let (through, head, _) = common::history_state(&db).await;
        if through < head {
            break;
        }
        assert!(
            attempts < 5,
            "every attempt's tail was merged before the kill"
        );
    }
    let last = ids.last().expect("posted").clone();

    // The server is down: the CLI finds the unmerged article in SQL.
    let run = common::tidings(&config, &["article", "show", &last]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains(&last), "{}", run.stdout);

    let (mut server, addr, built) =
        common::spawn_binary_watching(BIN, &config, "message-id filter built").await;
    // Every id once, though the first merge tick, as the server starts,
    // may move the tail into history while the filter's build reads both.
    let built = tokio::time::timeout(Duration::from_secs(20), built)
        .await
        .expect("filter built in time")
        .expect("log line");
    assert!(
        built.contains(&format!("ids={} ", ids.len())),
        "{} ids stored: {built}",
        ids.len()
    );
    let mut c = reader(addr).await;
    let mut p = common::Client::connect(addr).await;
    for id in &ids {
        assert!(
            c.cmd(&format!("STAT {id}")).await.starts_with("223"),
            "{id}"
        );
        assert!(
            p.cmd(&format!("IHAVE {id}")).await.starts_with("435"),
            "{id} wanted again after the restart"
        );
    }
    wait_for_merged(&db, ids.len() as i64).await;
    let _ = server.kill().await;
}

/// A server whose tail is merged at `tail_ids` (`storage.history_tail_ids`)
/// and which takes feeds from any local host as peer "p", with a
/// connection already in MODE STREAM.
async fn streaming_with_tail(tail_ids: usize) -> (TestServer, common::Client) {
    let s = TestServer::start_with(|c| {
        c.storage.history_tail_ids = tail_ids;
        c.peers = vec![common::peer("p", None, "*")];
    })
    .await;
    let mut feed = s.client().await;
    assert_eq!(feed.cmd("MODE STREAM").await, "203 Streaming permitted");
    (s, feed)
}

/// Message-id `i` at `domain`, in no useful order, as a real feed's are.
fn scattered_id(i: usize, domain: &str) -> String {
    format!(
        "<{:x}.{i}@{domain}>",
        (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}

/// A pipelined feed keeps the writer busy: a merge of the tail then runs a
/// few ids at a time between batches, spread over many of them, and each
/// id still reaches history once. (A first version took a batch that
/// merged nothing for the end of the merge under way and dropped the rest
/// of its ids from the tail unwritten.)
#[tokio::test]
async fn a_merge_spread_over_a_pipelined_feed_writes_every_message_id() {
    const N: usize = 3000;
    let (s, mut feed) = streaming_with_tail(100).await;
    let id = |i: usize| scattered_id(i, "spread.test");
    stream_takethis(&mut feed, N, id, "spread", "body\r\n").await;
    wait_for_merged(&s.db_path(), N as i64).await;
    for i in (0..N).step_by(97) {
        let m = id(i);
        assert_eq!(feed.cmd(&format!("CHECK {m}")).await, format!("438 {m}"));
    }
    s.stop().await;
}

/// Rows in history's two tables (migration 0008): (folded, recent, in
/// both).
async fn history_tables(db: &std::path::Path) -> (i64, i64, i64) {
    read_row(
        db,
        "SELECT (SELECT count(*) FROM history), (SELECT count(*) FROM history_recent), \
                (SELECT count(*) FROM history JOIN history_recent USING (msgid))",
    )
    .await
}

/// The one row `sql` reads from the database at `db`, on a connection of
/// its own.
async fn read_row<T>(db: &std::path::Path, sql: &str) -> T
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
    let row = sqlx::query_as(sql)
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pool.close().await;
    row
}

/// History is two tables: the writer merges its tail into a small recent
/// one and folds that into the large one in sorted passes, so a long
/// history is not rewritten a few ids at a time. Each id has its row in
/// one of them, is refused when offered again wherever it is, also after
/// a restart (whose message-id filter reads both), and an article removed
/// or cancelled has its row changed where it is.
#[tokio::test]
async fn history_folds_its_recent_rows_into_the_large_table_and_knows_every_id() {
    const N: usize = 2000;
    // A tail of 40 ids: history_recent is folded at ~400 rows.
    let (s, mut feed) = streaming_with_tail(40).await;
    let db = s.db_path();
    let id = |i: usize| scattered_id(i, "fold.test");
    stream_takethis(&mut feed, N, id, "fold", "body\r\n").await;
    wait_for_merged(&db, N as i64).await;
    let (folded, recent, both) = history_tables(&db).await;
    assert!(folded > 0, "nothing folded: {recent} rows recent");
    assert_eq!(
        folded + recent,
        N as i64,
        "{folded} folded, {recent} recent"
    );
    assert_eq!(both, 0, "ids in both tables");
    for i in (0..N).step_by(41) {
        let m = id(i);
        assert_eq!(feed.cmd(&format!("CHECK {m}")).await, format!("438 {m}"));
    }

    // An article whose row was folded, removed (as a cancel): its row
    // says so, in the folded table, and its id is still refused.
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
    let old: String = sqlx::query_scalar("SELECT msgid FROM history WHERE status = 0 LIMIT 1")
        .fetch_one(&pool)
        .await
        .expect("a folded row");
    let config = common::admin_config(&s, "");
    let run = common::tidings(&config, &["article", "remove", &old]).await;
    assert!(run.ok, "{}", run.stderr);
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT 'folded', status FROM history WHERE msgid = ?1 \
         UNION ALL SELECT 'recent', status FROM history_recent WHERE msgid = ?1",
    )
    .bind(&old)
    .fetch_all(&pool)
    .await
    .expect("read its rows");
    assert_eq!(rows, vec![("folded".to_owned(), 2)]);
    assert_eq!(
        feed.cmd(&format!("CHECK {old}")).await,
        format!("438 {old}")
    );

    // Some rows in each table: if the last fold took every row, a few
    // more articles (far fewer than a fold's ~400) put some back.
    let mut total = N;
    if history_tables(&db).await.1 == 0 {
        const MORE: usize = 5;
        let more = |i: usize| scattered_id(i, "more.fold.test");
        stream_takethis(&mut feed, MORE, more, "more", "body\r\n").await;
        total += MORE;
        wait_for_merged(&db, total as i64 - 1).await;
    }
    let (folded, recent, _) = history_tables(&db).await;
    assert!(folded > 0 && recent > 0, "{folded} folded, {recent} recent");

    // The group removed: every row of its articles, in either table, says
    // so; none is lost or doubled.
    let run = common::tidings(&config, &["group", "remove", "local.test"]).await;
    assert!(run.ok, "{}", run.stderr);
    let statuses: Vec<(i64, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM history_all GROUP BY status ORDER BY status")
            .fetch_all(&pool)
            .await
            .expect("count statuses");
    assert_eq!(statuses, vec![(2, 1), (3, total as i64 - 1)]);
    let recent_statuses: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT status FROM history_recent")
            .fetch_all(&pool)
            .await
            .expect("recent statuses");
    assert_eq!(
        recent_statuses,
        vec![3],
        "rows left as stored in history_recent"
    );
    pool.close().await;
    assert_eq!(history_tables(&db).await.2, 0, "ids in both tables");

    // Restarted, the server builds its message-id filter from both
    // tables (and the tail, empty here): every id, once.
    let (dir, _) = s.stop().await;
    let config = common::binary_config(
        dir.path(),
        "tidings",
        "[[peer]]\nname = \"p\"\npath_identity = \"p.test\"\naccept_from = [\"127.0.0.1\"]\n",
    );
    let (mut server, addr, built) = common::spawn_binary_watching(
        env!("CARGO_BIN_EXE_tidings"),
        &config,
        "message-id filter built",
    )
    .await;
    let built = tokio::time::timeout(Duration::from_secs(20), built)
        .await
        .expect("filter built in time")
        .expect("log line");
    assert!(
        built.contains(&format!("ids={total} ")),
        "{total} ids: {built}"
    );
    let mut feed = common::Client::connect(addr).await;
    assert_eq!(feed.cmd("MODE STREAM").await, "203 Streaming permitted");
    for i in (0..N).step_by(13) {
        let m = id(i);
        assert_eq!(feed.cmd(&format!("CHECK {m}")).await, format!("438 {m}"));
    }
    let fresh = "<fresh@fold.test>";
    assert_eq!(
        feed.cmd(&format!("CHECK {fresh}")).await,
        format!("238 {fresh}")
    );
    let _ = server.kill().await;
}

/// A database at `storage.max_size_mib` refuses new articles with the
/// codes that make posters and peers try again later (441, 436) and serves
/// every article it holds; removing articles makes room again, and a
/// reload with a higher limit lifts it.
#[tokio::test]
async fn a_full_database_refuses_new_articles_and_keeps_the_stored_ones() {
    let mut server = TestServer::start_with(|c| {
        c.storage.max_size_mib = 2;
        c.peers = vec![common::peer("feeder", None, "*")];
    })
    .await;
    let mut c = reader(server.addr).await;
    let body = "All work and no play makes Jack a dull boy.\r\n".repeat(300);
    let mut stored = Vec::new();
    let refusal = loop {
        assert!(
            stored.len() < 400,
            "2 MiB held {} articles of 13 KiB",
            stored.len()
        );
        let subject = format!("filler {}", stored.len());
        let status = c.post(&article("local.test", &subject, &body)).await;
        if !status.starts_with("240") {
            break status;
        }
        stored.push(common::posted_id(&status));
    };
    assert!(stored.len() >= 50, "only {} articles fit", stored.len());
    assert!(refusal.starts_with("441 "), "{refusal}");
    assert!(refusal.contains("database is full"), "{refusal}");

    // A peer is told to offer it again later.
    let mut feeder = common::Client::connect(server.addr).await;
    let id = "<full@feeder.test>";
    assert!(feeder.cmd(&format!("IHAVE {id}")).await.starts_with("335"));
    let offered = format!(
        "Path: feeder.test!not-for-mail\r\nFrom: f@feeder.test\r\nNewsgroups: local.test\r\n\
         Subject: offered\r\nMessage-ID: {id}\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n{body}.\r\n"
    );
    feeder.send(offered.as_bytes()).await;
    let status = feeder.line().await;
    assert!(status.starts_with("436 "), "{status}");

    // A streaming peer is told 400 and the connection ends: RFC 4644 has
    // no "later" for TAKETHIS, and 439 would make the peer drop it.
    let mut streamer = common::Client::connect(server.addr).await;
    assert!(streamer.cmd("MODE STREAM").await.starts_with("203"));
    let streamed = offered.replace(id, "<full2@feeder.test>");
    streamer
        .send(format!("TAKETHIS <full2@feeder.test>\r\n{streamed}").as_bytes())
        .await;
    let status = streamer.line().await;
    assert!(status.starts_with("400 "), "{status}");
    assert_eq!(streamer.try_line().await, None, "the connection must end");

    // Nothing stored is lost.
    for id in &stored {
        let (status, lines) = c.cmd_block(&format!("BODY {id}"), "222").await;
        assert!(status.starts_with("222"), "{status}");
        assert_eq!(lines.len(), 300, "{id}");
    }

    // Room made by removing articles is used again.
    let until = chrono::Utc::now().timestamp() + 86_400;
    for id in &stored[..stored.len() / 2] {
        let id = tidings::wire::types::MessageId::try_from(id.as_str()).expect("id");
        server
            .server()
            .store()
            .remove_article(&id, until)
            .await
            .expect("remove");
    }
    let status = c.post(&article("local.test", "after removal", &body)).await;
    assert!(status.starts_with("240"), "{status}");

    // The peer's article comes in once the limit is lifted.
    let mut config = server.config.clone();
    config.storage.max_size_mib = 0;
    server.server_mut().reload(config);
    for i in 0..stored.len() {
        let status = c
            .post(&article("local.test", &format!("more {i}"), &body))
            .await;
        assert!(status.starts_with("240"), "{status}");
    }
    assert!(feeder.cmd(&format!("IHAVE {id}")).await.starts_with("335"));
    feeder.send(offered.as_bytes()).await;
    let status = feeder.line().await;
    assert!(status.starts_with("235"), "{status}");
    server.stop().await;
}

/// Where the overview stands in the database at `db`: (overview_through,
/// the newest article id). The writer writes the overview rows of new
/// articles behind them (`store::overview`).
async fn overview_state(db: &std::path::Path) -> (i64, i64) {
    read_row(
        db,
        "SELECT (SELECT value FROM meta WHERE key = 'overview_through'), \
                (SELECT coalesce(max(id), 0) FROM articles)",
    )
    .await
}

/// The groups of the kill tests below, and the groups of their article
/// i: GROUPS[i % 3], every seventh also in q.three.
const KILL_GROUPS: [&str; 3] = ["q.one", "q.two", "q.three"];

fn kill_groups_of(i: usize) -> Vec<&'static str> {
    let mut g = vec![KILL_GROUPS[i % 3]];
    if i.is_multiple_of(7) && i % 3 != 2 {
        g.push("q.three");
    }
    g
}

/// A server binary's configuration in `dir` with a peer "p" that may feed
/// from 127.0.0.1, and the groups `KILL_GROUPS`.
fn kill_config(dir: &std::path::Path) -> std::path::PathBuf {
    common::binary_config(
        dir,
        "t",
        "[[peer]]\nname = \"p\"\npath_identity = \"p.test\"\naccept_from = [\"127.0.0.1\"]\n\
         [[group]]\nname = \"q.one\"\n[[group]]\nname = \"q.two\"\n\
         [[group]]\nname = \"q.three\"\n",
    )
}

/// Starts the server of `config` (database `db`), streams it 300
/// articles (article i in `kill_groups_of(i)`, subject "kill A.i" and
/// message-id `<kA.i@kill.test>` on attempt A), and SIGKILLs it as soon as
/// the last is acknowledged; again, up to five attempts, until the writer
/// is killed holding overview rows it has not written. Returns what was
/// sent, in order: (message-id, subject, groups).
async fn kill_holding_overview_rows(
    config: &std::path::Path,
    db: &std::path::Path,
) -> Vec<(String, String, Vec<&'static str>)> {
    const BIN: &str = env!("CARGO_BIN_EXE_tidings");
    const PER_ATTEMPT: usize = 300;
    let mut sent = Vec::new();
    for attempt in 1.. {
        let (mut server, addr) = common::spawn_binary(BIN, config).await;
        let mut feed = common::Client::connect(addr).await;
        assert_eq!(feed.cmd("MODE STREAM").await, "203 Streaming permitted");
        let mut answered = 0;
        for i in 0..PER_ATTEMPT {
            let groups = kill_groups_of(i);
            let (id, subject) = (
                format!("<k{attempt}.{i}@kill.test>"),
                format!("kill {attempt}.{i}"),
            );
            let text = format!(
                "TAKETHIS {id}\r\nPath: p.test!not-for-mail\r\n\
                 From: a@example.com\r\nNewsgroups: {}\r\nSubject: {subject}\r\n\
                 Message-ID: {id}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n.\r\n",
                groups.join(",")
            );
            feed.send(text.as_bytes()).await;
            sent.push((id, subject, groups));
            while i + 1 - answered > 64 || (i + 1 == PER_ATTEMPT && answered < PER_ATTEMPT) {
                let line = feed.line().await;
                assert!(line.starts_with("239"), "{line}");
                answered += 1;
            }
        }
        // At once: the writer writes a queue it holds within a few
        // milliseconds of going quiet.
        server.start_kill().expect("SIGKILL");
        let _ = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;
        let (through, head) = overview_state(db).await;
        if through < head {
            break;
        }
        assert!(
            attempt < 5,
            "every attempt's overview was written before the kill"
        );
    }
    sent
}

/// A server killed while its writer held overview rows not yet written
/// (their articles committed and acknowledged) writes them as it starts
/// again, from the articles' Xref: every group counts each of its
/// articles once, under the number its Xref gave it, OVER lists them with
/// their subjects, and numbering goes on after them.
#[tokio::test]
async fn a_killed_server_writes_the_overview_rows_it_held() {
    const BIN: &str = env!("CARGO_BIN_EXE_tidings");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.db");
    let config = kill_config(dir.path());
    const GROUPS: [&str; 3] = KILL_GROUPS;
    // Each group's subjects, in the order the feed sent them.
    let mut subjects: Vec<Vec<String>> = vec![Vec::new(); GROUPS.len()];
    for (_, subject, groups) in kill_holding_overview_rows(&config, &db).await {
        for g in groups {
            let k = GROUPS.iter().position(|n| *n == g).expect("group");
            subjects[k].push(subject.clone());
        }
    }

    let (mut server, addr, queued) =
        common::spawn_binary_watching(BIN, &config, "queued again").await;
    let queued = tokio::time::timeout(Duration::from_secs(20), queued)
        .await
        .expect("in time")
        .expect("log line");
    assert!(queued.contains("rows="), "{queued}");
    let (through, head) = overview_state(&db).await;
    assert_eq!(through, head, "written at start");

    let mut c = reader(addr).await;
    for (k, name) in GROUPS.iter().enumerate() {
        let n = subjects[k].len();
        assert_eq!(
            c.cmd(&format!("GROUP {name}")).await,
            format!("211 {n} 1 {n} {name}")
        );
        let (_, lines) = c.cmd_block(&format!("OVER 1-{n}"), "224").await;
        assert_eq!(lines.len(), n, "{name}");
        for (j, line) in lines.iter().enumerate() {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields[0], (j + 1).to_string(), "{line}");
            assert_eq!(fields[1], subjects[k][j], "{name} {line}");
            assert!(
                fields[8].contains(&format!("{name}:{}", j + 1)),
                "{name}: {line}"
            );
        }
    }
    let status = c
        .post(&article("q.one", "after the kill", "body\r\n"))
        .await;
    assert!(status.starts_with("240"), "{status}");
    let id = common::posted_id(&status);
    let xref = c.cmd(&format!("HDR Xref {id}")).await;
    assert!(xref.starts_with("225"), "{xref}");
    let lines = c.block().await;
    let next = subjects[0].len() + 1;
    assert!(
        lines[0].ends_with(&format!("q.one:{next}")),
        "{lines:?}, expected q.one:{next}"
    );
    let _ = server.kill().await;
}

/// An article answered 239 is readable by number at once on any other
/// connection, though the writer queues overview rows behind the articles
/// (`store::overview`): a reader that asks waits for the queue.
#[tokio::test]
async fn an_acknowledged_article_is_readable_by_number_on_another_connection_at_once() {
    const GROUPS: usize = 10;
    let s = TestServer::start_with(|c| {
        c.peers = vec![common::peer("p", None, "*")];
        for g in 0..GROUPS {
            let text = format!("[[group]]\nname = \"r.{g}\"\n");
            let parsed = tidings::config::Config::parse(&text).expect("group");
            c.groups.extend(parsed.groups);
        }
    })
    .await;
    let mut feed = s.client().await;
    assert_eq!(feed.cmd("MODE STREAM").await, "203 Streaming permitted");
    let mut r = reader(s.addr).await;
    for i in 0..200 {
        let (group, number) = (format!("r.{}", i % GROUPS), i / GROUPS + 1);
        let id = format!("<now.{i}@ack.test>");
        let text = format!(
            "TAKETHIS {id}\r\nPath: p.test!not-for-mail\r\nFrom: a@example.com\r\n\
             Newsgroups: {group}\r\nSubject: now {i}\r\nMessage-ID: {id}\r\n\
             Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n.\r\n"
        );
        feed.send(text.as_bytes()).await;
        assert_eq!(feed.line().await, format!("239 {id}"));
        assert_eq!(
            r.cmd(&format!("GROUP {group}")).await,
            format!("211 {number} 1 {number} {group}")
        );
        assert_eq!(
            r.cmd(&format!("STAT {number}")).await,
            format!("223 {number} {id}")
        );
    }
    s.stop().await;
}

/// The admin CLI removes a group while the server that was killed held
/// overview rows of the group's newest articles: the articles only in
/// that group go with it (found by their Xref), the cross-posted ones
/// stay in their other group, and the restarted server files none of
/// them in the group, should it come back.
#[tokio::test]
async fn a_group_removed_beside_queued_overview_rows_takes_its_articles() {
    const BIN: &str = env!("CARGO_BIN_EXE_tidings");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.db");
    let config = kill_config(dir.path());
    let sent = kill_holding_overview_rows(&config, &db).await;

    let run = common::tidings(&config, &["group", "remove", "q.one"]).await;
    assert!(run.ok, "{}", run.stderr);
    let (mut server, addr) = common::spawn_binary(BIN, &config).await;
    let mut c = reader(addr).await;
    let mut three = 0;
    for (id, _, groups) in &sent {
        let stat = c.cmd(&format!("STAT {id}")).await;
        if groups.contains(&"q.three") {
            three += 1;
        }
        if groups == &["q.one"] {
            assert!(stat.starts_with("430"), "{id} in q.one only: {stat}");
        } else {
            assert!(stat.starts_with("223"), "{id} in {groups:?}: {stat}");
        }
    }
    assert!(c.cmd("GROUP q.one").await.starts_with("411"));
    assert_eq!(
        c.cmd("GROUP q.three").await,
        format!("211 {three} 1 {three} q.three")
    );
    // Made again, the group starts empty.
    let run = common::tidings(&config, &["group", "add", "q.one"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(c.cmd("GROUP q.one").await, "211 0 1 0 q.one");
    let _ = server.kill().await;
}

/// The octets of free pages in a running server's database.
async fn free_bytes(server: &TestServer) -> i64 {
    let stats = server.server().store().stats().await.expect("stats");
    stats.free_bytes
}

/// A database made whole in advance (`storage.preallocate_mib`) takes new
/// articles in that room: the file does not grow, `stats` counts the
/// room left, and a restart leaves the file as it is and serves every
/// article.
#[tokio::test]
async fn a_preallocated_database_stores_articles_in_its_room() {
    let server = TestServer::start_with(|c| {
        c.storage.preallocate_mib = 4;
        // Bodies in the database, where the room is.
        c.storage.body_min_bytes = 0;
    })
    .await;
    let db = server.config.storage.database.clone();
    let len = std::fs::metadata(&db).expect("database").len();
    assert!(len >= 4 << 20, "{len} octets");
    let free_at_start = free_bytes(&server).await;
    assert!(free_at_start >= 3 << 20, "{free_at_start} octets free");

    let mut c = reader(server.addr).await;
    let body = "Room made in advance, as INN makes its buffers.\r\n".repeat(30);
    let mut stored = Vec::new();
    for i in 0..300 {
        let status = c
            .post(&article("local.test", &format!("room {i}"), &body))
            .await;
        assert!(status.starts_with("240"), "{status}");
        stored.push(common::posted_id(&status));
    }
    drop(c);
    // Stopping copies the whole WAL into the database.
    let (dir, config) = server.stop().await;
    assert_eq!(std::fs::metadata(&db).expect("database").len(), len);

    let server = TestServer::start_in(dir, config).await;
    assert_eq!(std::fs::metadata(&db).expect("database").len(), len);
    let free = free_bytes(&server).await;
    // 300 articles of ~1.6 KiB, their overview and history rows.
    assert!(
        free < free_at_start - (400 << 10),
        "{free} free, {free_at_start} before"
    );
    let mut c = reader(server.addr).await;
    for id in [&stored[0], &stored[150], &stored[299]] {
        let (status, lines) = c.cmd_block(&format!("BODY {id}"), "222").await;
        assert!(status.starts_with("222"), "{status}");
        assert_eq!(lines.len(), 30, "{id}");
    }
    server.stop().await;
}

/// Only the server makes the room: an admin command whose configuration
/// names `storage.preallocate_mib` leaves the file as it is.
#[tokio::test]
async fn an_admin_command_does_not_preallocate() {
    let server = TestServer::start().await;
    let db = server.config.storage.database.clone();
    let (dir, _) = server.stop().await;
    let len = std::fs::metadata(&db).expect("database").len();
    assert!(len < 16 << 20, "{len} octets");
    let config = dir.path().join("admin.toml");
    let text = format!(
        "[storage]\ndatabase = {:?}\npreallocate_mib = 16\n",
        db.display().to_string()
    );
    std::fs::write(&config, text).expect("config");
    let run = common::tidings(&config, &["stats"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(std::fs::metadata(&db).expect("database").len(), len);
}
