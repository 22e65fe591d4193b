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
    for i in 0..200 {
        let status = poster
            .post(&article("local.test", &format!("copy {i}"), &body))
            .await;
        assert!(status.starts_with("240"), "{status}");
    }
    // 200 posts of ~8 KiB (1.6 MB: the thread is nudged once, after the
    // first MiB) are ~1,500 WAL frames, far below the writer's threshold
    // of 5,000: only the checkpoint thread copies (the first MiB of) them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while size() < before + 1_000_000 {
        assert!(
            Instant::now() < deadline,
            "database file grew from {before} to {} bytes only",
            size()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = poster.cmd("GROUP local.test").await;
    assert!(status.starts_with("211 200 "), "{status}");
    s.stop().await;
}
