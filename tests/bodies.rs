//! The body store (src/store/bodies.rs): the bodies of large articles kept
//! in segment files beside the database, written once. Real server
//! binaries on real files, fed over TCP as a peer feeds.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Client;

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

/// A server binary's configuration in `dir`: bodies of 1,000 octets or
/// more kept apart in segments of 1 MiB, a peer "p" that may feed from
/// 127.0.0.1, the groups local.test and local.other, and `extra`.
fn config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    common::binary_config(
        dir,
        name,
        &format!(
            "body_min_bytes = 1000\nbody_segment_mib = 1\n\
             [[peer]]\nname = \"p\"\npath_identity = \"p.test\"\naccept_from = [\"127.0.0.1\"]\n\
             [[group]]\nname = \"local.test\"\n[[group]]\nname = \"local.other\"\n{extra}"
        ),
    )
}

/// The body of article `i`: ~5 KB of lines that name it, one of them
/// starting with a dot (dot-stuffed on the wire), so a body read back from
/// the wrong place or cut short shows.
fn body_of(i: usize) -> String {
    let mut body = format!("..a line that starts with a dot, article {i}\r\n");
    for line in 0..64 {
        body.push_str(&format!("article {i} line {line}: {}\r\n", "b".repeat(60)));
    }
    body
}

fn id_of(tag: &str, i: usize) -> String {
    format!("<{tag}{i}@bodies.test>")
}

/// The TAKETHIS of article `i` of `tag` to `group`: message-id
/// `id_of(tag, i)`, body `body_of(i)`.
fn takethis(tag: &str, group: &str, i: usize) -> String {
    format!(
        "TAKETHIS {m}\r\nPath: p.test!not-for-mail\r\nFrom: a@example.com\r\n\
         Newsgroups: {group}\r\nSubject: bodies {i}\r\nMessage-ID: {m}\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n{body}.\r\n",
        m = id_of(tag, i),
        body = body_of(i)
    )
}

/// Streams articles `range` of `tag` to `group` with TAKETHIS, up to 64
/// unanswered, and expects 239 for each.
async fn stream(feed: &mut Client, tag: &str, group: &str, range: std::ops::Range<usize>) {
    common::takethis_all(feed, range.map(|i| takethis(tag, group, i))).await;
}

async fn streaming(addr: std::net::SocketAddr) -> Client {
    let mut feed = Client::connect(addr).await;
    assert_eq!(feed.cmd("MODE STREAM").await, "203 Streaming permitted");
    feed
}

/// Reads article `i` by message-id and checks it whole: status, its
/// Subject, and its body exactly (dot-unstuffed by the client).
async fn check_article(c: &mut Client, tag: &str, i: usize) {
    let m = id_of(tag, i);
    let (status, lines) = c.cmd_block(&format!("ARTICLE {m}"), "220").await;
    assert!(status.contains(&m), "{status}");
    assert!(
        lines.contains(&format!("Subject: bodies {i}")),
        "{m}: {lines:?}"
    );
    let blank = lines.iter().position(|l| l.is_empty()).expect("blank line");
    let body: String = lines[blank + 1..]
        .iter()
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert_eq!(body, body_of(i).replacen("..", ".", 1), "{m}");
}

/// `tidings stats --json`.
async fn stats(config: &Path) -> serde_json::Value {
    let run = common::tidings(config, &["stats", "--json"]).await;
    assert!(run.ok, "{}", run.stderr);
    serde_json::from_str(&run.stdout).expect("json")
}

/// Articles streamed after a removal freed segments: ~2.2 MB of bodies,
/// more than the segment being filled can have left (1 MiB).
const NEW: usize = 400;

/// After more bodies came: a segment freed before (`free` of them) was
/// filled again, and a new file was made only once none was left free.
async fn free_segments_went_first(config: &Path, db: &Path, before: &[String], free: i64) {
    let s = stats(config).await;
    let free_now = s["free_body_segments"].as_i64().expect("free");
    let files = segment_files(db);
    assert!(free_now < free, "no freed segment was filled again: {s}");
    assert!(
        files.len() == before.len() || free_now == 0,
        "a new segment file while {free_now} were free: {files:?}, {s}"
    );
    assert!(files.starts_with(before), "{files:?} {before:?}");
}

fn segment_files(db: &Path) -> Vec<String> {
    let dir = PathBuf::from(format!("{}.bodies", db.display()));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Runs SQL on the database at `db` (the server stopped), returning the
/// first column of the first row.
async fn sql(db: &Path, sql: &str) -> i64 {
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
    let v: i64 = sqlx::query_scalar(sql)
        .fetch_one(&pool)
        .await
        .expect("query");
    pool.close().await;
    v
}

/// Of the articles `tag` in `range`, the one nearest `near` whose body is
/// kept apart. Bodies go apart only from a burst of eight or more handed
/// to the writer at once, and how a feed falls into batches depends on
/// timing, so which ones did is looked up.
async fn apart_near(db: &Path, tag: &str, range: std::ops::Range<usize>, near: usize) -> usize {
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
    let mut best: Option<usize> = None;
    for i in range {
        let seg: Option<Option<i64>> =
            sqlx::query_scalar("SELECT body_seg FROM articles WHERE msgid = ?1")
                .bind(id_of(tag, i))
                .fetch_optional(&pool)
                .await
                .expect("query");
        if seg.flatten().is_some() && best.is_none_or(|b| i.abs_diff(near) < b.abs_diff(near)) {
            best = Some(i);
        }
    }
    pool.close().await;
    best.expect("some article has its body apart")
}

/// Overwrites octet `at` of the body of article `msgid` (kept apart) in
/// its segment file with `with`, as a damaged disk would.
async fn damage_body(db: &Path, msgid: &str, at: u64, with: u8) {
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
    let (seg, off): (i64, i64) =
        sqlx::query_as("SELECT body_seg, body_off FROM articles WHERE msgid = ?1")
            .bind(msgid)
            .fetch_one(&pool)
            .await
            .expect("row");
    pool.close().await;
    assert!(seg > 0, "{msgid} has its body apart");
    let path = PathBuf::from(format!("{}.bodies/{seg:08}", db.display()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    let at = u64::try_from(off).expect("offset") + at;
    std::os::unix::fs::FileExt::write_all_at(&file, &[with], at).expect("damage");
}

async fn stop(mut server: tokio::process::Child) {
    let pid = server.id().expect("pid");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(20), server.wait()).await;
}

/// Articles streamed in bursts have their bodies written to segment files
/// (more than one: 2.4 MB of bodies in 1 MiB segments, so that the half
/// of them the test insists go apart already fill more than one), and
/// every way of reading them gives the article whole: ARTICLE, BODY and
/// HEAD by message-id and by number, OVER's size and lines, and a peer
/// fed from this server gets them intact.
#[tokio::test]
async fn large_bodies_are_kept_in_segments_and_served_whole() {
    const N: usize = 450;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink_config = config(dir.path(), "sink", "");
    let (sink, sink_addr) = common::spawn_binary(BIN, &sink_config).await;
    let source_config = config(
        dir.path(),
        "source",
        &format!(
            "[[peer]]\nname = \"sink\"\naddress = \"{sink_addr}\"\npath_identity = \"sink.test\"\n\
             send = \"local.*\"\n"
        ),
    );
    let (source, addr) = common::spawn_binary(BIN, &source_config).await;
    let mut feed = streaming(addr).await;
    stream(&mut feed, "s", "local.test", 0..N).await;

    let db = dir.path().join("source.db");
    assert!(segment_files(&db).len() >= 2, "{:?}", segment_files(&db));
    let s = stats(&source_config).await;
    let apart = s["articles_with_body_apart"].as_i64().expect("apart");
    assert!(apart > N as i64 / 2, "{s}");
    assert_eq!(s["articles"], N as i64, "{s}");
    let size: i64 = s["article_bytes"].as_i64().expect("bytes");
    assert!(size > (N * body_of(0).len()) as i64, "{s}");

    let mut c = common::reader(addr).await;
    for i in 0..N {
        check_article(&mut c, "s", i).await;
    }
    let status = c.cmd("GROUP local.test").await;
    assert!(status.starts_with(&format!("211 {N} 1 {N} ")), "{status}");
    // Article i is number i + 1.
    let (_, body) = c.cmd_block("BODY 8", "222").await;
    assert_eq!(body[0], ".a line that starts with a dot, article 7");
    assert_eq!(body.len(), 65);
    let (_, head) = c.cmd_block("HEAD 8", "221").await;
    assert!(head.contains(&"Subject: bodies 7".to_owned()), "{head:?}");
    assert!(!head.iter().any(|l| l.contains("line 3")), "{head:?}");
    // OVER's :bytes is the whole article's size, :lines the body's lines.
    let (_, over) = c.cmd_block("OVER 8", "224").await;
    let fields: Vec<&str> = over[0].split('\t').collect();
    let (_, whole) = c.cmd_block("ARTICLE 8", "220").await;
    let stored: usize = whole.iter().map(|l| l.len() + 2).sum();
    assert_eq!(fields[6], stored.to_string(), "{over:?}");
    assert_eq!(fields[7], "65", "{over:?}");

    // The feed onward reads them whole too.
    let mut far = common::reader(sink_addr).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = far.cmd("GROUP local.test").await;
        if status.starts_with(&format!("211 {N} ")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "sink: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in (0..N).step_by(13).chain([N - 1]) {
        check_article(&mut far, "s", i).await;
    }
    stop(source).await;
    stop(sink).await;
}

/// A segment whose articles are all gone (here: their group removed) is
/// filled again from its start before a new file is made, and the
/// articles stored there read back whole; the segment of articles that
/// stay is left alone.
#[tokio::test]
async fn a_segment_freed_by_removals_is_filled_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), "t", "");
    let db = dir.path().join("t.db");
    let (server, addr) = common::spawn_binary(BIN, &config).await;
    let mut feed = streaming(addr).await;
    // Two segments' worth for local.other, then a few for local.test.
    stream(&mut feed, "gone", "local.other", 0..400).await;
    stream(&mut feed, "kept", "local.test", 0..40).await;
    let before = segment_files(&db);
    assert!(before.len() >= 2, "{before:?}");
    let run = common::tidings(&config, &["group", "remove", "local.other"]).await;
    assert!(run.ok, "{}", run.stderr);
    let s = stats(&config).await;
    assert_eq!(s["articles"], 40, "{s}");
    let free = s["free_body_segments"].as_i64().expect("free");
    assert!(free >= 1, "{s}");
    // The next bodies go to the freed segments before any new file.
    stream(&mut feed, "new", "local.test", 0..NEW).await;
    free_segments_went_first(&config, &db, &before, free).await;
    let mut c = common::reader(addr).await;
    for i in 0..40 {
        check_article(&mut c, "kept", i).await;
    }
    for i in 0..NEW {
        check_article(&mut c, "new", i).await;
    }
    let status = c.cmd("ARTICLE <gone5@bodies.test>").await;
    assert!(status.starts_with("430"), "{status}");
    stop(server).await;
}

/// A server killed mid-feed keeps every article it acknowledged, body
/// included. An article whose row was committed but whose body never
/// reached the disk (what a crash between the two leaves; made here by
/// spoiling the newest body and saying it was never checked) is removed at
/// the next start, as if it had never come: a peer offering it again is
/// asked for it, and every other article is served whole.
#[tokio::test]
async fn a_killed_server_keeps_acknowledged_bodies_and_drops_an_unwritten_one() {
    const N: usize = 200;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), "t", "");
    let db = dir.path().join("t.db");
    let (mut server, addr) = common::spawn_binary(BIN, &config).await;
    let mut feed = streaming(addr).await;
    stream(&mut feed, "k", "local.test", 0..N).await;
    server.start_kill().expect("SIGKILL");
    let _ = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;

    // The newest article with its body apart: its body spoiled on disk,
    // and the mark of checked bodies put back before it.
    let newest = sql(
        &db,
        "SELECT max(id) FROM articles WHERE body_seg IS NOT NULL",
    )
    .await;
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
    sqlx::query("UPDATE meta SET value = ?1 WHERE key = 'bodies_verified'")
        .bind(newest - 1)
        .execute(&pool)
        .await
        .expect("mark");
    let spoiled: String = sqlx::query_scalar("SELECT msgid FROM articles WHERE id = ?1")
        .bind(newest)
        .fetch_one(&pool)
        .await
        .expect("msgid");
    pool.close().await;
    // Its first octet is the body's leading dot.
    damage_body(&db, &spoiled, 0, b'#').await;

    let (server, addr) = common::spawn_binary(BIN, &config).await;
    let mut c = common::reader(addr).await;
    let status = c.cmd(&format!("ARTICLE {spoiled}")).await;
    assert!(status.starts_with("430"), "{status}");
    let status = c.cmd("GROUP local.test").await;
    assert!(status.starts_with(&format!("211 {} ", N - 1)), "{status}");
    for i in 0..N {
        if id_of("k", i) != spoiled {
            check_article(&mut c, "k", i).await;
        }
    }
    let mut feed = streaming(addr).await;
    let answer = feed.cmd(&format!("CHECK {spoiled}")).await;
    assert_eq!(answer, format!("238 {spoiled}"));
    stop(server).await;
}

/// A server killed in the middle of a feed of large articles keeps every
/// one it acknowledged (239), body whole; an article it did not answer is
/// whole or absent after the restart, never served spoiled.
#[tokio::test]
async fn a_server_killed_mid_feed_serves_every_acknowledged_body_whole() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    const N: usize = 5000;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), "t", "");
    let (mut server, addr) = common::spawn_binary(BIN, &config).await;
    let feed = streaming(addr).await;
    let (mut reader, mut writer) = feed.into_parts();
    // The feed is sent without waiting (the server reads as it can), but
    // for the part after the first `SENT_BEFORE_KILL`, held back until the
    // kill: however fast the server, the kill comes mid-feed.
    const SENT_BEFORE_KILL: usize = 1000;
    let killed = std::sync::Arc::new(tokio::sync::Notify::new());
    let sender = tokio::spawn({
        let killed = killed.clone();
        async move {
            for i in 0..N {
                if i == SENT_BEFORE_KILL {
                    killed.notified().await;
                }
                let text = takethis("m", "local.test", i);
                if writer.write_all(text.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    });
    let mut acknowledged = Vec::new();
    let mut line = String::new();
    let killed_after = 300;
    loop {
        line.clear();
        let read = tokio::time::timeout(Duration::from_secs(20), reader.read_line(&mut line))
            .await
            .expect("an answer or the end in time");
        if read.unwrap_or(0) == 0 {
            break;
        }
        let answer = line.trim_end();
        assert!(answer.starts_with("239 "), "{answer}");
        acknowledged.push(answer[4..].to_owned());
        if acknowledged.len() == killed_after {
            server.start_kill().expect("SIGKILL");
            killed.notify_one();
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), server.wait()).await;
    sender.abort();
    assert!(acknowledged.len() >= killed_after, "{}", acknowledged.len());
    assert!(acknowledged.len() < N, "the kill came after the whole feed");

    let (server, addr) = common::spawn_binary(BIN, &config).await;
    let mut c = common::reader(addr).await;
    let mut present = 0;
    for i in 0..N {
        let m = id_of("m", i);
        if acknowledged.contains(&m) || c.cmd(&format!("STAT {m}")).await.starts_with("223") {
            check_article(&mut c, "m", i).await;
            present += 1;
        }
    }
    let status = c.cmd("GROUP local.test").await;
    assert!(status.starts_with(&format!("211 {present} ")), "{status}");
    stop(server).await;
}

/// A body spoiled on disk after it was checked is never served as the
/// article: ARTICLE and BODY answer 403 and the session goes on.
#[tokio::test]
async fn a_body_that_no_longer_matches_its_crc_is_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), "t", "");
    let db = dir.path().join("t.db");
    let (server, addr) = common::spawn_binary(BIN, &config).await;
    let mut feed = streaming(addr).await;
    stream(&mut feed, "c", "local.test", 0..20).await;
    let spoiled = apart_near(&db, "c", 0..20, 10).await;
    let m = id_of("c", spoiled);
    damage_body(&db, &m, 5, b'X').await;
    let mut c = common::reader(addr).await;
    for command in [format!("ARTICLE {m}"), format!("BODY {m}")] {
        let status = c.cmd(&command).await;
        assert!(status.starts_with("403"), "{command}: {status}");
    }
    check_article(&mut c, "c", (spoiled + 1) % 20).await;
    stop(server).await;
}

/// `tidings backup` copies the bodies kept apart beside the backup, and a
/// server started on the backup serves every article whole.
#[tokio::test]
async fn a_backup_takes_the_bodies_with_it() {
    const N: usize = 250;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), "t", "");
    let (server, addr) = common::spawn_binary(BIN, &config).await;
    let mut feed = streaming(addr).await;
    stream(&mut feed, "b", "local.test", 0..N).await;
    let backup = dir.path().join("copy.db");
    let run = common::tidings(&config, &["backup", &backup.display().to_string()]).await;
    assert!(run.ok, "{}", run.stderr);
    stop(server).await;
    assert!(
        !segment_files(&backup).is_empty(),
        "no segments beside the backup"
    );

    let restored = common::binary_config(
        dir.path(),
        "copy",
        "[[group]]\nname = \"local.test\"\n[[group]]\nname = \"local.other\"\n",
    );
    let (server, addr) = common::spawn_binary(BIN, &restored).await;
    let mut c = common::reader(addr).await;
    for i in 0..N {
        check_article(&mut c, "b", i).await;
    }
    stop(server).await;
    // A second backup to the same name is refused.
    let run = common::tidings(&config, &["backup", &backup.display().to_string()]).await;
    assert!(!run.ok && run.stderr.contains("exists"), "{}", run.stderr);
}

/// A reload with other body store settings says they wait for the next
/// start (the writer reads them once), rather than ignoring them silently.
#[tokio::test]
async fn a_reload_says_when_body_settings_wait_for_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path(), "t", "");
    let (server, _, said) =
        common::spawn_binary_watching(BIN, &config, "take effect at the next start").await;
    let text = std::fs::read_to_string(&config).expect("config");
    let changed = text.replace("body_min_bytes = 1000", "body_min_bytes = 2000");
    assert_ne!(text, changed);
    std::fs::write(&config, changed).expect("rewrite");
    let pid = server.id().expect("pid").to_string();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status();
    let line = tokio::time::timeout(Duration::from_secs(10), said)
        .await
        .expect("the reload's warning in time")
        .expect("a warning");
    assert!(line.contains("[storage]"), "{line}");
    stop(server).await;
}

/// Expiry frees the segments of the bodies it removes (their rows go by
/// one DELETE per chunk), counts their bytes in its report, and the next
/// bodies fill those segments before any new file.
#[tokio::test]
async fn expiry_frees_segments_and_counts_the_bodies_it_removes() {
    const OLD: usize = 400;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(
        dir.path(),
        "t",
        "[expire]\ninterval_secs = 0\n[[expire.rule]]\ngroups = \"local.other\"\ndays = 1\n",
    );
    let db = dir.path().join("t.db");
    let (server, addr) = common::spawn_binary(BIN, &config).await;
    let mut feed = streaming(addr).await;
    stream(&mut feed, "old", "local.other", 0..OLD).await;
    stream(&mut feed, "kept", "local.test", 0..40).await;
    let before = segment_files(&db);
    let apart = stats(&config).await["articles_with_body_apart"]
        .as_i64()
        .expect("apart");
    assert!(apart > OLD as i64 / 2, "{apart}");

    let two_days_on = (chrono::Utc::now().timestamp() + 2 * 86_400).to_string();
    let run = common::tidings(&config, &["expire", "--json", "--at", &two_days_on]).await;
    assert!(run.ok, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(report["articles"], OLD as i64, "{report}");
    let bodies: usize = (0..OLD).map(|i| body_of(i).len() - 1).sum();
    assert!(
        report["bytes"].as_u64() > Some(bodies as u64),
        "{report} < {bodies}"
    );
    let s = stats(&config).await;
    let free = s["free_body_segments"].as_i64().expect("free");
    assert!(free >= 1, "{s}");

    stream(&mut feed, "new", "local.test", 0..NEW).await;
    free_segments_went_first(&config, &db, &before, free).await;
    let mut c = common::reader(addr).await;
    for i in 0..NEW {
        check_article(&mut c, "new", i).await;
    }
    for i in 0..40 {
        check_article(&mut c, "kept", i).await;
    }
    stop(server).await;
}

/// A source server feeding a peer "sink" on `sink_port` the groups
/// `send`: its configuration, process and address.
async fn source_feeding_sink(
    dir: &Path,
    sink_port: u16,
    send: &str,
) -> (PathBuf, tokio::process::Child, std::net::SocketAddr) {
    let source_config = config(
        dir,
        "source",
        &format!(
            "[[peer]]\nname = \"sink\"\naddress = \"127.0.0.1:{sink_port}\"\n\
             path_identity = \"sink.test\"\nsend = \"{send}\"\nmax_backoff_secs = 1\n"
        ),
    );
    let (source, addr) = common::spawn_binary(BIN, &source_config).await;
    (source_config, source, addr)
}

/// Starts the sink on `sink_port` (the source's backlog then drains to
/// it) and waits until it has `count` articles in `group`.
async fn sink_with(
    dir: &Path,
    sink_port: u16,
    group: &str,
    count: usize,
) -> (tokio::process::Child, Client) {
    let sink_config = config(dir, "sink", "");
    let text = std::fs::read_to_string(&sink_config).expect("config");
    let text = text.replace("127.0.0.1:0", &format!("127.0.0.1:{sink_port}"));
    std::fs::write(&sink_config, text).expect("config");
    let (sink, sink_addr) = common::spawn_binary(BIN, &sink_config).await;
    let mut far = common::reader(sink_addr).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = far.cmd(&format!("GROUP {group}")).await;
        if status.starts_with(&format!("211 {count} ")) {
            return (sink, far);
        }
        assert!(tokio::time::Instant::now() < deadline, "sink: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One damaged body does not stop a feed: the peer gets every other
/// article whole, and the damaged one is not offered (the feeder logs it).
#[tokio::test]
async fn a_damaged_body_is_left_out_of_a_feed_and_the_rest_goes() {
    const N: usize = 120;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink_port = common::free_port();
    let (_, source, addr) = source_feeding_sink(dir.path(), sink_port, "local.*").await;
    let mut feed = streaming(addr).await;
    stream(&mut feed, "d", "local.test", 0..N).await;
    // The sink is not up yet: the whole feed waits in the backlog while
    // one body is damaged.
    let source_db = dir.path().join("source.db");
    let spoiled = apart_near(&source_db, "d", 0..N, 50).await;
    let damaged = id_of("d", spoiled);
    damage_body(&source_db, &damaged, 0, b'#').await;

    let (sink, mut far) = sink_with(dir.path(), sink_port, "local.test", N - 1).await;
    for i in (0..N).filter(|&i| i != spoiled) {
        check_article(&mut far, "d", i).await;
    }
    let status = far.cmd(&format!("STAT {damaged}")).await;
    assert!(status.starts_with("430"), "{status}");
    stop(source).await;
    stop(sink).await;
}

/// A feeder reads a body kept apart only for an article its peer takes:
/// the peer gets those whole, and none of the others is offered.
#[tokio::test]
async fn a_feed_offers_large_articles_by_the_peers_patterns_only() {
    const N: usize = 60;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink_port = common::free_port();
    let (source_config, source, addr) =
        source_feeding_sink(dir.path(), sink_port, "local.*,!local.other").await;
    let mut feed = streaming(addr).await;
    // Bursts of both groups, so that bodies of both are kept apart.
    for start in (0..N).step_by(20) {
        stream(&mut feed, "w", "local.test", start..start + 20).await;
        stream(&mut feed, "x", "local.other", start..start + 20).await;
    }
    let source_db = dir.path().join("source.db");
    let apart = sql(
        &source_db,
        "SELECT count(*) FROM articles WHERE body_seg IS NOT NULL",
    )
    .await;
    assert!(apart >= N as i64, "only {apart} bodies kept apart");

    let (sink, mut far) = sink_with(dir.path(), sink_port, "local.test", N).await;
    for i in 0..N {
        check_article(&mut far, "w", i).await;
    }
    let status = far.cmd("GROUP local.other").await;
    assert!(status.starts_with("211 0 "), "{status}");
    let run = common::tidings(&source_config, &["peer", "status", "--json"]).await;
    assert!(run.ok, "{}", run.stderr);
    let peers: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let sink_state = peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "sink"))
        .unwrap_or_else(|| panic!("no sink in {peers}"));
    assert_eq!(sink_state["offered"], N, "{sink_state}");
    assert_eq!(sink_state["accepted"], N, "{sink_state}");
    stop(source).await;
    stop(sink).await;
}
