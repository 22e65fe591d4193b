//! What an operator sees of the database files while the server runs.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, article, reader};

/// Committed articles reach the database file itself soon after they are
/// acknowledged (the checkpoint thread copies the WAL ahead of the
/// writer), not only once the WAL has grown to the writer's own
/// checkpoint threshold of ~40 MiB; and the server stops cleanly with
/// that thread running.
#[tokio::test]
async fn committed_articles_are_copied_into_the_database_file_soon() {
    let s = TestServer::start().await;
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
    // once, after 400 commits) are ~2,300 WAL frames, below the writer's
    // threshold of 5,000: only the checkpoint thread copies (the first 400
    // of) them.
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

/// Waits until every stored article has its history row (the writer
/// merges its in-memory tail when idle, within a second or so).
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

/// A server killed before it merged its tail into history loses none of
/// it: the admin CLI finds those articles by message-id with the server
/// down, and the restarted server reads the tail back, refuses the ids
/// when offered again, and merges them.
#[tokio::test]
async fn a_killed_server_reads_its_unmerged_message_ids_back() {
    const BIN: &str = env!("CARGO_BIN_EXE_tidings");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.db");
    let config = common::binary_config(
        dir.path(),
        "t",
        "[[peer]]\nname = \"p\"\npath_identity = \"p.test\"\naccept_from = [\"127.0.0.1\"]\n\
         [[group]]\nname = \"local.test\"\n",
    );
    // Posts, then SIGKILL at once; the writer merges when idle (about
    // once a second), so the last post is nearly always still in memory:
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

    let (mut server, addr) = common::spawn_binary(BIN, &config).await;
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

/// A pipelined feed keeps the writer busy: a merge of the tail then runs a
/// few ids at a time between batches, spread over many of them, and each
/// id still reaches history once. (A first version took a batch that
/// merged nothing for the end of the merge under way and dropped the rest
/// of its ids from the tail unwritten.)
#[tokio::test]
async fn a_merge_spread_over_a_pipelined_feed_writes_every_message_id() {
    const N: usize = 3000;
    const WINDOW: usize = 64;
    let s = TestServer::start_with(|c| {
        c.storage.history_tail_ids = 100;
        c.peers = vec![common::peer("p", None, "*")];
    })
    .await;
    let mut feed = s.client().await;
    assert_eq!(feed.cmd("MODE STREAM").await, "203 Streaming permitted");
    let id = |i: usize| {
        format!(
            "<{:x}.{i}@spread.test>",
            (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )
    };
    let mut answered = 0;
    for i in 0..N {
        let text = format!(
            "TAKETHIS {m}\r\nPath: origin.test!not-for-mail\r\nFrom: a@example.com\r\n\
             Newsgroups: local.test\r\nSubject: spread {i}\r\nMessage-ID: {m}\r\n\
             Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n.\r\n",
            m = id(i)
        );
        feed.send(text.as_bytes()).await;
        if i + 1 - answered >= WINDOW {
            assert!(feed.line().await.starts_with("239"));
            answered += 1;
        }
    }
    while answered < N {
        assert!(feed.line().await.starts_with("239"));
        answered += 1;
    }
    wait_for_merged(&s.db_path(), N as i64).await;
    for i in (0..N).step_by(97) {
        let m = id(i);
        assert_eq!(feed.cmd(&format!("CHECK {m}")).await, format!("438 {m}"));
    }
    s.stop().await;
}
