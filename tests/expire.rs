//! Expiry: articles past their groups' retention go, their message-ids are
//! remembered for storage.remember_days and then forgotten, as are refused
//! ones (issue 3: "expired and refused ids remembered for a configured
//! time"). Run by `tidings expire` beside a live server, and by the server
//! itself every expire.interval_secs.
//!
//! Peers connect from 127.0.0.1 (configured as peer "feeder"); readers from
//! 127.0.0.2.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    Client, TestServer, admin_config, article, log_head, peer, posted_id, reader, tidings,
};
use tidings::config::Config;

const DAY: i64 = 86_400;

/// `[expire]` as the tests configure it: local.test keeps articles a day,
/// everything else for ever; the server itself does not expire.
const RULES: &str = "[expire]\ninterval_secs = 0\n\
                     [[expire.rule]]\ngroups = \"local.test\"\ndays = 1\n";

/// local.test keeps articles a day, local.general three, the rest for ever.
const ONE_AND_THREE_DAYS: &str = "[expire]\ninterval_secs = 0\n\
                                  [[expire.rule]]\ngroups = \"local.test\"\ndays = 1\n\
                                  [[expire.rule]]\ngroups = \"local.general\"\ndays = 3\n";

async fn server_with(expire: &str) -> TestServer {
    let expire = Config::parse(expire).expect("expire config").expire;
    TestServer::start_with(move |c| {
        c.expire = expire;
        c.peers = vec![peer("feeder", None, "*")];
    })
    .await
}

/// The CLI's configuration: the server's database and the same rules.
fn config_file(server: &TestServer) -> PathBuf {
    admin_config(server, RULES)
}

/// `tidings expire --at AT` on `config`; its report line.
async fn expire_at(config: &Path, at: i64) -> String {
    let run = tidings(config, &["expire", "--at", &at.to_string()]).await;
    assert!(run.ok, "expire failed: {}", run.stderr);
    run.stdout.trim().to_owned()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn code(line: &str) -> &str {
    line.get(..3).unwrap_or(line)
}

/// A relayed article for IHAVE / TAKETHIS, dot-terminated.
fn relayed(id: &str, groups: &str) -> String {
    format!(
        "Path: origin.test!not-for-mail\r\nFrom: a@example.com\r\nNewsgroups: {groups}\r\n\
         Subject: again\r\nMessage-ID: {id}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n\
         body\r\n.\r\n"
    )
}

#[tokio::test]
async fn the_cli_expires_articles_past_their_groups_retention() {
    let server = server_with(RULES).await;
    let config = config_file(&server);
    let mut r = reader(server.addr).await;
    let only_test = posted_id(&r.post(&article("local.test", "old", "a\r\n")).await);
    let only_general = posted_id(&r.post(&article("local.general", "kept", "b\r\n")).await);
    let both = posted_id(
        &r.post(&article("local.test,local.general", "cross", "c\r\n"))
            .await,
    );

    // Nothing is a day old yet.
    let report = expire_at(&config, now()).await;
    assert!(report.starts_with("expired 0 articles"), "{report}");

    // Two days on: local.test lets both of its articles go; the cross-post
    // lives on in local.general, the other is deleted.
    let report = expire_at(&config, now() + 2 * DAY).await;
    assert!(
        report.starts_with("expired 1 articles") && report.contains(", 2 numbers in 1 groups;"),
        "{report}"
    );
    assert_eq!(r.cmd("GROUP local.test").await, "211 0 3 2 local.test");
    assert_eq!(code(&r.cmd("STAT 2").await), "423");
    assert_eq!(
        r.cmd("GROUP local.general").await,
        "211 2 1 2 local.general"
    );
    let (_, over) = r.cmd_block("OVER 1-2", "224").await;
    assert_eq!(over.len(), 2, "{over:?}");
    assert_eq!(code(&r.cmd(&format!("ARTICLE {only_test}")).await), "430");
    assert_eq!(code(&r.cmd(&format!("STAT {only_general}")).await), "223");
    let (_, lines) = r.cmd_block(&format!("ARTICLE {both}"), "220").await;
    assert_eq!(lines.last().map(String::as_str), Some("c"), "{lines:?}");

    // Its message-id is remembered: a peer cannot feed it back.
    let mut p = Client::connect(server.addr).await;
    assert_eq!(code(&p.cmd(&format!("IHAVE {only_test}")).await), "435");

    // Running again finds nothing more.
    let report = expire_at(&config, now() + 2 * DAY).await;
    assert!(
        report.starts_with("expired 0 articles (0 bytes), 0 numbers"),
        "{report}"
    );
    server.stop().await;
}

#[tokio::test]
async fn expired_and_refused_message_ids_are_forgotten_after_remember_days() {
    let server = server_with(RULES).await;
    let config = config_file(&server);
    let mut r = reader(server.addr).await;
    let old = posted_id(&r.post(&article("local.test", "old", "a\r\n")).await);

    // A refused article is remembered: CHECK says 438 from then on.
    let mut p = Client::connect(server.addr).await;
    assert_eq!(p.cmd("MODE STREAM").await, "203 Streaming permitted");
    p.send(b"TAKETHIS <refused@example.test>\r\nSubject: no From, no Newsgroups\r\n\r\nx\r\n.\r\n")
        .await;
    assert_eq!(code(&p.line().await), "439");
    assert_eq!(
        p.cmd("CHECK <refused@example.test>").await,
        "438 <refused@example.test>"
    );

    let expired_at = now() + 2 * DAY;
    let report = expire_at(&config, expired_at).await;
    assert!(report.starts_with("expired 1 articles"), "{report}");
    assert_eq!(p.cmd(&format!("CHECK {old}")).await, format!("438 {old}"));

    // Within remember_days (11) of its expiry, still remembered ...
    let report = expire_at(&config, expired_at + 10 * DAY).await;
    assert!(report.ends_with("forgot 1 message-ids"), "{report}");
    assert_eq!(
        p.cmd("CHECK <refused@example.test>").await,
        "238 <refused@example.test>"
    );
    assert_eq!(p.cmd(&format!("CHECK {old}")).await, format!("438 {old}"));

    // ... and after it, forgotten: the article may be fed again.
    let report = expire_at(&config, expired_at + 12 * DAY).await;
    assert!(report.ends_with("forgot 1 message-ids"), "{report}");
    assert_eq!(p.cmd(&format!("CHECK {old}")).await, format!("238 {old}"));
    p.send(format!("TAKETHIS {old}\r\n{}", relayed(&old, "local.general")).as_bytes())
        .await;
    assert_eq!(p.line().await, format!("239 {old}"));
    assert_eq!(code(&r.cmd(&format!("STAT {old}")).await), "223");
    server.stop().await;
}

#[tokio::test]
async fn the_server_expires_by_itself_every_interval() {
    // local.test keeps articles one second; the server expires every second.
    let rules = "[expire]\ninterval_secs = 1\n\
                 [[expire.rule]]\ngroups = \"local.test\"\ndays = 0.0000116\n";
    let server = server_with(rules).await;
    let mut r = reader(server.addr).await;
    let short = posted_id(&r.post(&article("local.test", "short", "a\r\n")).await);
    let kept = posted_id(&r.post(&article("local.general", "kept", "b\r\n")).await);

    let deadline = Instant::now() + Duration::from_secs(15);
    while code(&r.cmd(&format!("STAT {short}")).await) == "223" {
        assert!(Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(code(&r.cmd(&format!("STAT {short}")).await), "430");
    assert_eq!(r.cmd("GROUP local.test").await, "211 0 2 1 local.test");
    assert_eq!(code(&r.cmd(&format!("STAT {kept}")).await), "223");
    server.stop().await;
}

#[tokio::test]
async fn expiry_beside_a_streaming_peer_loses_nothing() {
    let server = server_with(RULES).await;
    let config = config_file(&server);
    let mut r = reader(server.addr).await;
    for i in 0..300 {
        posted_id(
            &r.post(&article("local.test", &format!("old {i}"), "a\r\n"))
                .await,
        );
    }

    // A peer streams 1,000 articles into a group kept for ever while the
    // CLI expires the 300 of local.test.
    let addr = server.addr;
    let feed = tokio::spawn(async move {
        let mut p = Client::connect(addr).await;
        assert_eq!(p.cmd("MODE STREAM").await, "203 Streaming permitted");
        let mut accepted = 0;
        for burst in 0..20 {
            let mut text = String::new();
            for i in 0..50 {
                let id = format!("<live{burst}.{i}@example.test>");
                text.push_str(&format!(
                    "TAKETHIS {id}\r\n{}",
                    relayed(&id, "local.general")
                ));
            }
            p.send(text.as_bytes()).await;
            for _ in 0..50 {
                if code(&p.line().await) == "239" {
                    accepted += 1;
                }
            }
        }
        accepted
    });
    let report = expire_at(&config, now() + 2 * DAY).await;
    assert!(report.starts_with("expired 300 articles"), "{report}");
    assert_eq!(feed.await.expect("feed"), 1000);
    assert_eq!(
        r.cmd("GROUP local.general").await,
        "211 1000 1 1000 local.general"
    );
    assert_eq!(r.cmd("GROUP local.test").await, "211 0 301 300 local.test");
    server.stop().await;
}

/// An article removed before the writer merged its message-id into
/// history (within two seconds of its arrival), by expiry or with its group,
/// is remembered and forgotten like any other, and may then be fed again:
/// the merge that comes later must not write its row back as stored.
#[tokio::test]
async fn a_message_id_removed_before_its_history_merge_is_forgotten_in_time() {
    let server = server_with(RULES).await;
    let config = config_file(&server);
    let mut r = reader(server.addr).await;
    let start = now();
    let mut ids = Vec::new();
    // Posted, removed and past its remember time within a moment, so the
    // merge mostly comes after the expiry that forgets it.
    for round in 0..3 {
        let group = format!("local.brief{round}");
        let run = tidings(&config, &["group", "add", &group]).await;
        assert!(run.ok, "{}", run.stderr);
        let expired = posted_id(&r.post(&article("local.test", "brief", "x\r\n")).await);
        let with_group = posted_id(&r.post(&article(&group, "brief", "y\r\n")).await);

        let report = expire_at(&config, start + 2 * DAY).await;
        assert!(report.starts_with("expired 1 articles"), "{report}");
        let run = tidings(&config, &["group", "remove", &group]).await;
        let removed = run.stdout.contains("(1 articles deleted)");
        assert!(removed, "{}{}", run.stdout, run.stderr);
        let report = expire_at(&config, start + 14 * DAY).await;
        assert!(report.ends_with("forgot 2 message-ids"), "{report}");
        ids.extend([expired, with_group]);
    }
    assert_forgotten_after_the_merge(&server, &config, &ids, start + 14 * DAY).await;
    server.stop().await;
}

/// Once the history merge has passed every article, `ids` (removed and
/// past their remember time at `at`) are forgotten: CHECK wants them, and
/// the first may be fed again.
async fn assert_forgotten_after_the_merge(
    server: &TestServer,
    config: &Path,
    ids: &[String],
    at: i64,
) {
    let head = log_head(config).await;
    common::wait_for_history(&server.db_path(), |(through, _, _)| through >= head).await;
    let report = expire_at(config, at).await;
    assert!(report.ends_with("forgot 0 message-ids"), "{report}");

    let mut p = Client::connect(server.addr).await;
    assert_eq!(p.cmd("MODE STREAM").await, "203 Streaming permitted");
    for id in ids {
        assert_eq!(p.cmd(&format!("CHECK {id}")).await, format!("238 {id}"));
    }
    let first = &ids[0];
    let takethis = format!("TAKETHIS {first}\r\n{}", relayed(first, "local.general"));
    p.send(takethis.as_bytes()).await;
    assert_eq!(p.line().await, format!("239 {first}"));
}

#[tokio::test]
async fn expiring_the_newest_articles_never_hands_their_log_ids_out_again() {
    let server = server_with(RULES).await;
    let config = config_file(&server);
    let mut r = reader(server.addr).await;
    posted_id(&r.post(&article("local.test", "a", "a\r\n")).await);
    posted_id(&r.post(&article("local.test", "b", "b\r\n")).await);
    let report = expire_at(&config, now() + 2 * DAY).await;
    assert!(report.starts_with("expired 2 articles"), "{report}");
    drop(r);
    // Every article is gone; a feeder's cursor may be at 2 already.
    let (dir, cfg) = server.stop().await;
    let server = TestServer::start_in(dir, cfg).await;
    assert_eq!(log_head(&config).await, 2);
    let mut r = reader(server.addr).await;
    posted_id(&r.post(&article("local.general", "after", "c\r\n")).await);
    assert_eq!(log_head(&config).await, 3);
    server.stop().await;
}

#[tokio::test]
async fn a_cross_post_goes_when_its_longest_kept_group_lets_it_go() {
    let server = server_with(ONE_AND_THREE_DAYS).await;
    let path = admin_config(&server, ONE_AND_THREE_DAYS);
    let mut r = reader(server.addr).await;
    let both = posted_id(
        &r.post(&article("local.general,local.test", "cross", "c\r\n"))
            .await,
    );

    let report = expire_at(&path, now() + 2 * DAY).await;
    assert!(
        report.starts_with("expired 0 articles (0 bytes), 1 numbers in 1 groups"),
        "{report}"
    );
    assert_eq!(r.cmd("GROUP local.test").await, "211 0 2 1 local.test");
    assert_eq!(
        r.cmd("GROUP local.general").await,
        "211 1 1 1 local.general"
    );
    assert_eq!(code(&r.cmd(&format!("STAT {both}")).await), "223");

    let report = expire_at(&path, now() + 4 * DAY).await;
    assert!(
        report.starts_with("expired 1 articles") && report.contains(", 1 numbers in 1 groups;"),
        "{report}"
    );
    assert_eq!(
        r.cmd("GROUP local.general").await,
        "211 0 2 1 local.general"
    );
    assert_eq!(code(&r.cmd(&format!("STAT {both}")).await), "430");
    server.stop().await;
}

/// `tidings expire --dry-run` reports exactly what the real run then does
/// (a cross-post between groups kept 1 and 3 days, ids forgotten after
/// remember_days) and changes nothing.
#[tokio::test]
async fn a_dry_run_reports_what_expiry_then_does_and_changes_nothing() {
    let server = server_with(ONE_AND_THREE_DAYS).await;
    let path = admin_config(&server, ONE_AND_THREE_DAYS);
    let mut r = reader(server.addr).await;
    for (groups, subject) in [
        ("local.test", "only test"),
        ("local.general", "only general"),
        ("local.general,local.test", "cross"),
        ("local.announce", "kept for ever"),
    ] {
        let status = r.post(&article(groups, subject, "x\r\n")).await;
        assert!(status.starts_with("240"), "{status}");
    }
    let state = async |r: &mut Client| {
        let mut s = Vec::new();
        for g in ["local.test", "local.general", "local.announce"] {
            s.push(r.cmd(&format!("GROUP {g}")).await);
        }
        s
    };
    let json = async |args: &[&str]| {
        let run = tidings(&path, args).await;
        assert!(run.ok, "{args:?}: {}", run.stderr);
        let mut v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        v.as_object_mut()
            .expect("object")
            .remove("dry_run")
            .expect("dry_run key");
        v
    };
    // Now; two days on (local.test's front goes, the cross-post stays in
    // local.general); four days on (local.general's go, the cross-post
    // with them); twenty days on (their ids are forgotten).
    let mut seen_work = 0;
    for days in [0, 2, 4, 20] {
        let at = (now() + days * DAY).to_string();
        let before = state(&mut r).await;
        let dry = json(&["expire", "--dry-run", "--json", "--at", &at]).await;
        assert_eq!(state(&mut r).await, before, "the dry run changed groups");
        let real = json(&["expire", "--json", "--at", &at]).await;
        assert_eq!(dry, real, "day {days}");
        if real["numbers"].as_u64() != Some(0) || real["forgotten"].as_u64() != Some(0) {
            seen_work += 1;
        }
    }
    assert_eq!(seen_work, 3, "days 2, 4 and 20 each had something to do");
    let text = tidings(&path, &["expire", "--dry-run"]).await;
    assert!(
        text.stdout.starts_with("would expire 0 articles"),
        "{}",
        text.stdout
    );
    server.stop().await;
}
