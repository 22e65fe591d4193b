//! The operator's CLI, run as the built binary beside a running server on
//! the same database, and the binary's own start-up.

mod common;

use std::time::Duration;

use common::{TestServer, admin_config, article, log_head, posted_id, tidings};
use tidings::config::Config;

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

/// A config file naming the test server's database.
fn config_file(server: &TestServer) -> std::path::PathBuf {
    admin_config(server, "")
}

#[tokio::test]
async fn a_group_added_by_the_cli_is_served_at_once() {
    let server = TestServer::start().await;
    let config = config_file(&server);
    let mut c = server.client().await;
    assert!(c.cmd("GROUP comp.lang.rust").await.starts_with("411"));

    let run = tidings(
        &config,
        &["group", "add", "comp.lang.rust", "--description", "Rust"],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        c.cmd("GROUP comp.lang.rust").await,
        "211 0 1 0 comp.lang.rust"
    );
    let (_, lines) = c.cmd_block("LIST NEWSGROUPS comp.*", "215").await;
    assert_eq!(lines, vec!["comp.lang.rust\tRust"]);
    let (_, lines) = c.cmd_block("LIST ACTIVE.TIMES comp.*", "215").await;
    assert_eq!(lines.len(), 1, "{lines:?}");

    let again = tidings(&config, &["group", "add", "comp.lang.rust"]).await;
    assert!(!again.ok);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    server.stop().await;
}

#[tokio::test]
async fn group_set_changes_posting_rights_at_once() {
    let server = TestServer::start().await;
    let config = config_file(&server);
    let mut c = server.client().await;
    let run = tidings(&config, &["group", "set", "local.test", "--status", "n"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("no posting"), "{}", run.stdout);
    let status = c.post(&article("local.test", "x", "y\r\n")).await;
    assert!(status.starts_with("441"), "{status}");
    assert!(status.contains("not allowed"), "{status}");
    let (_, lines) = c.cmd_block("LIST ACTIVE local.test", "215").await;
    assert_eq!(lines, vec!["local.test 0 1 n"]);

    let run = tidings(&config, &["group", "set", "local.test", "--status", "y"]).await;
    assert!(run.ok);
    let status = c.post(&article("local.test", "x", "y\r\n")).await;
    assert!(status.starts_with("240"), "{status}");
    server.stop().await;
}

#[tokio::test]
async fn group_remove_deletes_the_group_and_its_only_articles() {
    let server = TestServer::start().await;
    let config = config_file(&server);
    let mut c = server.client().await;
    let only = posted_id(&c.post(&article("local.test", "only here", "a\r\n")).await);
    let both = posted_id(
        &c.post(&article("local.test,local.general", "in two", "b\r\n"))
            .await,
    );
    let run = tidings(&config, &["group", "remove", "local.test"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("1 articles deleted"), "{}", run.stdout);
    assert!(c.cmd("GROUP local.test").await.starts_with("411"));
    assert!(c.cmd(&format!("STAT {only}")).await.starts_with("430"));
    assert!(c.cmd(&format!("STAT {both}")).await.starts_with("223"));
    let missing = tidings(&config, &["group", "remove", "local.test"]).await;
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains("no such newsgroup"),
        "{}",
        missing.stderr
    );
    server.stop().await;
}

#[tokio::test]
async fn removing_the_newest_articles_never_hands_their_log_ids_out_again() {
    let server = TestServer::start().await;
    let config = config_file(&server);
    let mut c = server.client().await;
    posted_id(&c.post(&article("local.general", "kept", "a\r\n")).await);
    posted_id(&c.post(&article("local.test", "newest", "b\r\n")).await);
    assert_eq!(log_head(&config).await, 2);
    let run = tidings(&config, &["group", "remove", "local.test"]).await;
    assert!(run.ok, "{}", run.stderr);
    drop(c);
    // A feeder's cursor may already be past id 2: after a restart the next
    // article must still be 3.
    let (dir, cfg) = server.stop().await;
    let server = TestServer::start_in(dir, cfg).await;
    assert_eq!(log_head(&config).await, 2);
    let mut c = server.client().await;
    posted_id(&c.post(&article("local.general", "after", "c\r\n")).await);
    assert_eq!(log_head(&config).await, 3);
    server.stop().await;
}

#[tokio::test]
async fn list_show_and_stats_speak_json() {
    let server = TestServer::start().await;
    let config = config_file(&server);
    let mut c = server.client().await;
    let id = posted_id(&c.post(&article("local.general", "json", "body\r\n")).await);

    let run = tidings(&config, &["group", "list", "--json"]).await;
    assert!(run.ok, "{}", run.stderr);
    let groups: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let names: Vec<&str> = groups
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "control",
            "control.cancel",
            "local.announce",
            "local.general",
            "local.test"
        ]
    );

    let run = tidings(&config, &["group", "show", "local.general", "--json"]).await;
    let g: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(g["count"], 1);
    assert_eq!(g["high"], 1);

    let run = tidings(&config, &["stats", "--json"]).await;
    let s: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(s["articles"], 1);
    assert_eq!(s["groups"], 5);

    let run = tidings(&config, &["article", "show", &id]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("Subject: json"), "{}", run.stdout);
    assert!(run.stdout.contains("\nbody\n"), "{}", run.stdout);
    server.stop().await;
}

/// With no peer to show, `peer list` and `peer status` say why rather
/// than print nothing; `--json` is an empty list.
#[tokio::test]
async fn peer_list_and_status_say_when_there_is_no_peer() {
    let server = TestServer::start().await;
    let config = config_file(&server);
    for args in [["peer", "list"], ["peer", "status"]] {
        let run = tidings(&config, &args).await;
        assert!(run.ok, "{args:?}: {}", run.stderr);
        assert!(
            run.stdout
                .contains("no peers in the configuration: add a [[peer]]"),
            "{args:?}: {}",
            run.stdout
        );
    }
    for args in [["peer", "list", "--json"], ["peer", "status", "--json"]] {
        let run = tidings(&config, &args).await;
        assert!(run.ok, "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout.trim(), "[]", "{args:?}");
    }
    // A peer that only feeds us: listed, but nothing to feed it.
    let receive_only = admin_config(
        &server,
        "[[peer]]\nname = \"up\"\npath_identity = \"up.test\"\naccept_from = [\"127.0.0.1\"]\n",
    );
    let run = tidings(&receive_only, &["peer", "list"]).await;
    assert!(run.stdout.contains("(receive only)"), "{}", run.stdout);
    let run = tidings(&receive_only, &["peer", "status"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("every [[peer]] in the configuration is receive-only"),
        "{}",
        run.stdout
    );
    server.stop().await;
}

/// An article can be named as a newsreader numbers it, GROUP:NUMBER, for
/// `article show` and `article remove` as well as by message-id.
#[tokio::test]
async fn articles_are_named_by_group_and_number_too() {
    let server = TestServer::start().await;
    let config = config_file(&server);
    let mut c = server.client().await;
    let first = posted_id(&c.post(&article("local.test", "one", "1\r\n")).await);
    let second = posted_id(&c.post(&article("local.test", "two", "2\r\n")).await);

    let run = tidings(&config, &["article", "show", "local.test:2", "--json"]).await;
    assert!(run.ok, "{}", run.stderr);
    let a: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(a["message_id"], second.as_str());

    for (arg, needle) in [
        ("local.test:3", "no article 3 in local.test (it holds 1-2)"),
        ("no.such.group:1", "no such newsgroup: no.such.group"),
        ("local.test:x", "invalid message-id"),
    ] {
        let run = tidings(&config, &["article", "show", arg]).await;
        assert!(!run.ok, "{arg} succeeded");
        assert!(run.stderr.contains(needle), "{arg}: {}", run.stderr);
    }

    let run = tidings(&config, &["article", "remove", "local.test:1"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("removed {first}")),
        "{}",
        run.stdout
    );
    assert!(c.cmd(&format!("STAT {first}")).await.starts_with("430"));
    let run = tidings(&config, &["article", "show", "local.test:1"]).await;
    assert!(
        run.stderr.contains("no article 1 in local.test"),
        "{}",
        run.stderr
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_names_and_unknown_things_are_clear_errors() {
    let server = TestServer::start().await;
    let config = config_file(&server);
    for (args, needle) in [
        (vec!["group", "add", "bad..name"], "empty component"),
        (vec!["group", "add", "bad*name"], "not allowed"),
        (
            vec!["group", "add", "ok.name", "--status", "x"],
            "invalid status",
        ),
        (vec!["group", "show", "no.such.group"], "no such newsgroup"),
        (vec!["group", "set", "local.test"], "nothing to change"),
        (vec!["article", "show", "not-an-id"], "invalid message-id"),
        (vec!["article", "show", "<none@example.com>"], "no article"),
    ] {
        let run = tidings(&config, &args).await;
        assert!(!run.ok, "{args:?} succeeded");
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_bad_config_file_is_refused_with_line_and_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nposting = maybe\n",
    )
    .expect("write");
    let run = tidings(&path, &["serve"]).await;
    assert!(!run.ok);
    assert!(run.stderr.contains("bad.toml"), "{}", run.stderr);
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
}

/// The binary starts on a config, says where it listens, serves, and stops
/// cleanly on SIGTERM.
#[tokio::test]
async fn the_server_binary_starts_and_says_where_it_listens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.toml");
    let db = dir.path().join("data").join("t.db");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[storage]\ndatabase = {:?}\n",
            db.display().to_string()
        ),
    )
    .expect("write");
    let (mut child, addr) = common::spawn_binary(BIN, &path).await;
    let mut c = common::Client::connect(addr).await;
    assert!(c.greeting.starts_with("200"));
    assert!(c.cmd("GROUP local.general").await.starts_with("211"));
    assert!(db.exists());

    let pid = child.id().expect("pid");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("stopped in time")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

/// `tidings peer status b --json` for the server of `config`: peer b's
/// object (null when the output is not what it should be).
async fn b_status(config: &std::path::Path) -> serde_json::Value {
    let run = tidings(config, &["peer", "status", "b", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    v[0].clone()
}

/// Server b (path identity b.test), which takes a's feed from 127.0.0.1.
async fn b_fed_by_a() -> TestServer {
    common::node(
        "b",
        common::free_port(),
        vec![common::peer("a", None, "*")],
        &[],
    )
    .await
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A peer that was down and is up again: `peer status` shows the error it
/// had, marked as from before the connection now up.
#[tokio::test]
async fn peer_status_marks_an_error_from_before_the_connection_as_past() {
    let pb = common::free_port();
    let block = |port: u16| {
        format!(
            "[[peer]]\nname = \"b\"\npath_identity = \"b.test\"\naddress = \"127.0.0.1:{port}\"\n\
             max_backoff_secs = 1\n"
        )
    };
    let a = TestServer::start_with(|c| {
        c.peers = Config::parse(&block(pb)).expect("peer").peers;
    })
    .await;
    let config = admin_config(&a, &block(pb));
    let status = || b_status(&config);
    wait_until("a connect error", || async {
        status().await["last_error"].is_string()
    })
    .await;
    let says = |text: &str, all: &[&str]| all.iter().all(|w| text.contains(w));
    let human = tidings(&config, &["peer", "status"]).await.stdout;
    assert!(
        says(&human, &["b: not connected", "last error: cannot connect"])
            && !human.contains("before"),
        "{human}"
    );

    let b = common::node("b", pb, vec![common::peer("a", None, "*")], &[]).await;
    wait_until("b connected", || async {
        status().await["connected"] == true
    })
    .await;
    let human = tidings(&config, &["peer", "status"]).await.stdout;
    assert!(
        says(&human, &["b: connected since", ", before this connection)"]),
        "{human}"
    );
    b.stop().await;
    a.stop().await;
}

/// A `[[group]]` added to the file is not made by a reload (the entries are
/// read when the database is first made): `tidings reload` says so and how
/// to add it, and says nothing once the group is carried.
#[tokio::test]
async fn reload_tells_of_a_configured_group_the_server_does_not_carry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("t.toml");
    let base = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\npath_identity = \"t.test\"\n[storage]\ndatabase = {:?}\n\
         [[group]]\nname = \"local.test\"\n",
        dir.path().join("t.db").display().to_string()
    );
    std::fs::write(&config, &base).expect("write");
    let (mut child, _addr) = common::spawn_binary(BIN, &config).await;

    let run = tidings(&config, &["reload"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(!run.stdout.contains("note:"), "{}", run.stdout);

    std::fs::write(&config, format!("{base}[[group]]\nname = \"comp.new\"\n")).expect("write");
    let run = tidings(&config, &["reload"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("[[group]] comp.new is not carried")
            && run.stdout.contains("`tidings group add comp.new`"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("local.test"), "{}", run.stdout);

    assert!(tidings(&config, &["group", "add", "comp.new"]).await.ok);
    let run = tidings(&config, &["reload"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(!run.stdout.contains("note:"), "{}", run.stdout);
    let _ = child.kill().await;

    // Killed, the server left its pid file; the pid now names another
    // program, which a reload must not signal (SIGHUP would end it).
    let mut other = tokio::process::Command::new("sleep")
        .arg("30")
        .kill_on_drop(true)
        .spawn()
        .expect("sleep");
    let pid = other.id().expect("pid");
    std::fs::write(dir.path().join("tidings.pid"), format!("{pid}\n")).expect("pid file");
    let run = tidings(&config, &["reload"]).await;
    assert!(
        !run.ok && run.stderr.contains("is not a tidings server"),
        "{}",
        run.stderr
    );
    assert!(other.try_wait().expect("wait").is_none(), "signalled");
    let _ = other.kill().await;
}

/// A peer added to the file takes effect on `tidings reload`; pause holds
/// its articles back and resume sends them; status tells it all.
#[tokio::test]
async fn reload_adds_a_peer_and_pause_resume_hold_and_release_its_feed() {
    let b = TestServer::start_with(|c| {
        let text =
            "[[peer]]\nname = \"a\"\npath_identity = \"a.test\"\naccept_from = [\"127.0.0.1\"]\n";
        c.peers = tidings::config::Config::parse(text).expect("peer").peers;
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("a.toml");
    let base = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\npath_identity = \"a.test\"\n[storage]\ndatabase = {:?}\n",
        dir.path().join("a.db").display().to_string()
    );
    std::fs::write(&config, &base).expect("write");
    let (mut child, addr) = common::spawn_binary(BIN, &config).await;

    let with_peer = format!(
        "{base}[[peer]]\nname = \"b\"\npath_identity = \"b.test\"\naddress = \"{}\"\n",
        b.addr
    );
    std::fs::write(&config, with_peer).expect("write");
    let run = tidings(&config, &["reload"]).await;
    assert!(run.ok, "{}", run.stderr);
    let status = || b_status(&config);
    wait_until("peer b connected", || async {
        status().await["connected"] == true
    })
    .await;

    let mut a = common::Client::connect(addr).await;
    let first = posted_id(&a.post(&article("local.test", "one", "1\r\n")).await);
    let mut rb = b.client().await;
    wait_until("first article on b", || {
        let id = first.clone();
        let addr = b.addr;
        async move {
            let mut c = common::Client::connect(addr).await;
            c.cmd(&format!("STAT {id}")).await.starts_with("223")
        }
    })
    .await;

    assert!(tidings(&config, &["peer", "pause", "b"]).await.ok);
    wait_until("paused", || async { status().await["connected"] == false }).await;
    let second = posted_id(&a.post(&article("local.test", "two", "2\r\n")).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rb.cmd(&format!("STAT {second}")).await.starts_with("430"));
    let s = status().await;
    assert_eq!(s["paused"], true);
    assert_eq!(s["backlog_articles"], 1);
    assert_eq!(s["accepted"], 1);

    let human = tidings(&config, &["peer", "status"]).await;
    assert!(human.stdout.contains("b: paused"), "{}", human.stdout);
    assert!(
        human.stdout.contains("backlog:  1 articles"),
        "{}",
        human.stdout
    );

    assert!(tidings(&config, &["peer", "resume", "b"]).await.ok);
    wait_until("second article on b", || {
        let id = second.clone();
        let addr = b.addr;
        async move {
            let mut c = common::Client::connect(addr).await;
            c.cmd(&format!("STAT {id}")).await.starts_with("223")
        }
    })
    .await;
    wait_until("backlog drained", || async {
        status().await["backlog_articles"] == 0
    })
    .await;

    let missing = tidings(&config, &["peer", "pause", "nobody"]).await;
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains("no peer named"),
        "{}",
        missing.stderr
    );
    let _ = child.kill().await;
    b.stop().await;
}

/// `peer reset-cursor`: back to 0, everything stored is offered again
/// (and refused, the peer having it: nothing is stored twice); to the
/// head, the backlog is skipped; a place outside the log, or a peer not
/// configured, is a clear error. A feed with nothing to send shows no
/// rate.
#[tokio::test]
async fn reset_cursor_offers_again_or_skips_and_refuses_what_is_outside_the_log() {
    let b = b_fed_by_a().await;
    let a = common::node(
        "a",
        common::free_port(),
        vec![common::peer("b", Some(b.addr), "*")],
        &[],
    )
    .await;
    let block = format!(
        "[[peer]]\nname = \"b\"\npath_identity = \"b.test\"\naddress = \"{}\"\n",
        b.addr
    );
    let config = admin_config(&a, &block);
    let status = || b_status(&config);
    let count_on_b = || async {
        let g = b.server().store().group("local.test").await.expect("store");
        g.expect("group").count
    };
    let mut poster = a.client().await;
    for i in 0..3 {
        let status = poster
            .post(&article("local.test", &format!("n{i}"), "x\r\n"))
            .await;
        assert!(status.starts_with("240"), "{status}");
    }
    wait_until("three accepted", || async {
        status().await["accepted"] == 3
    })
    .await;
    wait_until("no rate once idle", || async {
        status().await["rate"] == 0.0
    })
    .await;

    for to in ["--to=-1", "--to=4"] {
        let run = tidings(&config, &["peer", "reset-cursor", "b", to]).await;
        let says = "is outside the article log: 0 (everything stored is sent again) to 3";
        assert!(!run.ok && run.stderr.contains(says), "{to}: {}", run.stderr);
    }
    let run = tidings(&config, &["peer", "reset-cursor", "nobody"]).await;
    assert!(
        !run.ok && run.stderr.contains("no peer named"),
        "{}",
        run.stderr
    );
    assert_eq!(status().await["cursor"], 3, "unchanged by the refusals");

    let run = tidings(&config, &["peer", "reset-cursor", "b", "--to", "0"]).await;
    assert!(
        run.ok && run.stdout.contains("b: cursor now 0"),
        "{}",
        run.stdout
    );
    wait_until("offered again and refused", || async {
        let s = status().await;
        s["refused"] == 3 && s["backlog_articles"] == 0
    })
    .await;
    let s = status().await;
    assert_eq!(
        (s["offered"].as_i64(), s["accepted"].as_i64()),
        (Some(6), Some(3))
    );
    assert_eq!(count_on_b().await, 3, "nothing stored twice");

    // Paused, two posts wait; reset to the head skips them.
    assert!(tidings(&config, &["peer", "pause", "b"]).await.ok);
    for i in 0..2 {
        poster
            .post(&article("local.test", &format!("skipped {i}"), "x\r\n"))
            .await;
    }
    assert_eq!(status().await["backlog_articles"], 2);
    let run = tidings(&config, &["peer", "reset-cursor", "b"]).await;
    assert!(
        run.ok && run.stdout.contains("b: cursor now 5"),
        "{}",
        run.stdout
    );
    assert_eq!(status().await["backlog_articles"], 0);
    assert!(tidings(&config, &["peer", "resume", "b"]).await.ok);
    poster.post(&article("local.test", "after", "x\r\n")).await;
    wait_until("the new article on b", || async { count_on_b().await == 4 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count_on_b().await, 4, "the skipped two never sent");
    a.stop().await;
    b.stop().await;
}

/// `peer status` counts in a peer's backlog only what its feeder would
/// send it: not the articles its patterns leave out.
#[tokio::test]
async fn a_backlog_counts_only_the_articles_for_the_peer() {
    let down = common::free_port();
    let block = format!(
        "[[peer]]\nname = \"b\"\npath_identity = \"b.test\"\naddress = \"127.0.0.1:{down}\"\n\
         send = \"comp.*\"\n"
    );
    let a = common::node(
        "a",
        common::free_port(),
        Config::parse(&block).expect("peer").peers,
        &["comp.lang"],
    )
    .await;
    let config = admin_config(&a, &block);
    let mut poster = a.client().await;
    for group in [
        "comp.lang",
        "local.test",
        "comp.lang",
        "local.test",
        "local.test",
    ] {
        let status = poster.post(&article(group, "for b?", "x\r\n")).await;
        assert!(status.starts_with("240"), "{status}");
    }
    let run = tidings(&config, &["peer", "status", "b", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v[0]["backlog_articles"], 2, "{}", run.stdout);
    assert_eq!(v[0]["backlog_exact"], true);
    let human = tidings(&config, &["peer", "status"]).await.stdout;
    assert!(human.contains("backlog:  2 articles"), "{human}");
    a.stop().await;
}

/// A server killed while connected to a peer leaves that recorded in the
/// database; the next start clears it, so `peer status` never shows a
/// connection no server holds (here: the feed is paused meanwhile, so the
/// new server does not connect).
#[tokio::test]
async fn a_connection_left_recorded_by_a_killed_server_is_cleared_at_start() {
    let b = b_fed_by_a().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let block = format!(
        "[[peer]]\nname = \"b\"\npath_identity = \"b.test\"\naddress = \"{}\"\n",
        b.addr
    );
    let config = common::binary_config(dir.path(), "a", &block);
    let status = || b_status(&config);
    let (mut child, _) = common::spawn_binary(BIN, &config).await;
    wait_until("b connected", || async {
        status().await["connected"] == true
    })
    .await;
    child.kill().await.expect("SIGKILL");
    assert_eq!(
        status().await["connected"],
        true,
        "as the killed server left it"
    );
    assert!(tidings(&config, &["peer", "pause", "b"]).await.ok);

    let (mut child, _) = common::spawn_binary(BIN, &config).await;
    let s = status().await;
    assert_eq!(
        (&s["connected"], &s["paused"]),
        (&false.into(), &true.into()),
        "{s}"
    );
    let human = tidings(&config, &["peer", "status"]).await.stdout;
    assert!(human.contains("b: paused"), "{human}");
    let _ = child.kill().await;
    b.stop().await;
}

/// A round that ends after an operator moved the cursor saves its counts
/// but not its cursor (nor its retries): the operator's move stands.
#[tokio::test]
async fn a_round_ending_after_a_reset_leaves_the_cursor_where_the_operator_put_it() {
    use tidings::store::peers::{FeedCounts, FeedRound};
    let a = TestServer::start().await;
    let store = a.server().store();
    let start = store.peer_state("p").await.expect("state");
    assert_eq!(start.cursor, 0, "a peer new before the posts");
    let mut poster = a.client().await;
    for i in 0..3 {
        poster
            .post(&article("local.test", &format!("r{i}"), "x\r\n"))
            .await;
    }
    let round = |from: i64, retry: &'static [i64]| FeedRound {
        from,
        cursor: 3,
        counts: FeedCounts {
            offered: 3,
            accepted: 3,
            ..FeedCounts::default()
        },
        rate: 1.0,
        retry,
        retry_at: 0,
        retried: &[],
    };
    // The feeder read cursor 0 and offered 1-3; meanwhile, reset to 1.
    assert!(store.reset_peer_cursor("p", Some(1)).await.expect("reset"));
    store
        .save_feed_round("p", round(0, &[2]))
        .await
        .expect("save");
    let s = store.peer_state("p").await.expect("state");
    assert_eq!((s.cursor, s.offered, s.accepted), (1, 3, 3));
    assert_eq!(
        store.peer_backlog("p", s.cursor).await.expect("backlog").0,
        2,
        "articles 2 and 3, and no retry"
    );
    // Not moved meanwhile: the round's cursor and retries are saved.
    store
        .save_feed_round("p", round(1, &[2]))
        .await
        .expect("save");
    let s = store.peer_state("p").await.expect("state");
    assert_eq!(s.cursor, 3);
    assert_eq!(
        store.peer_backlog("p", 3).await.expect("backlog").0,
        1,
        "the retry"
    );
    a.stop().await;
}

/// `group import` takes INN's active and newsgroups files: a dry run
/// changes nothing, the import creates the groups with their statuses and
/// describes them, the server serves them at once, groups already here
/// keep their own settings, and a second import changes nothing.
#[tokio::test]
async fn group_import_takes_inn_s_active_and_newsgroups_files() {
    let server = TestServer::start().await;
    let config = config_file(&server);
    let mut c = server.client().await;
    let (_, before) = c.cmd_block("LIST NEWSGROUPS local.test", "215").await;
    let dir = server.dir.path();
    let active = dir.join("active");
    std::fs::write(
        &active,
        "comp.lang.rust 0000001234 0000000100 y\n\
         comp.archive 0000000003 0000000001 n\n\
         news.announce.important 0000000010 0000000001 m\n\
         local.test 0000000050 0000000001 n\n\
         alt.gone 0000000000 0000000001 x\n\
         alt.old 0000000000 0000000001 =alt.new\n\
         this line is not right\n",
    )
    .expect("write active");
    let newsgroups = dir.join("newsgroups");
    std::fs::write(
        &newsgroups,
        "comp.lang.rust\tThe Rust programming language.\n\
         comp.archive\t\tOld articles, read only.\n\
         local.test\tSomething else.\n\
         sci.physics\tNot carried here.\n",
    )
    .expect("write newsgroups");
    let (active, newsgroups) = (active.to_string_lossy(), newsgroups.to_string_lossy());
    let args = [
        "group",
        "import",
        "--active",
        &active,
        "--newsgroups",
        &newsgroups,
    ];

    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let run = tidings(&config, &dry).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("3 would be created, 1 here already"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("nothing was changed"), "{}", run.stdout);
    assert!(c.cmd("GROUP comp.lang.rust").await.starts_with("411"));

    let run = tidings(&config, &args).await;
    assert!(run.ok, "{}", run.stderr);
    for needle in [
        ":5: alt.gone: flag x",
        ":6: alt.old: an alias of alt.new",
        ":7: expected `name high low flag`, found 5 field(s)",
        "groups: 3 created, 1 here already",
        "descriptions: 2 set, 1 not (the group has its own), 1 for groups not carried here",
    ] {
        assert!(run.stdout.contains(needle), "{needle}: {}", run.stdout);
    }
    let (_, lines) = c
        .cmd_block("LIST ACTIVE comp.*,news.*,local.test", "215")
        .await;
    assert_eq!(
        lines,
        vec![
            "comp.archive 0 1 n",
            "comp.lang.rust 0 1 y",
            "local.test 0 1 y",
            "news.announce.important 0 1 m",
        ]
    );
    let (_, lines) = c.cmd_block("LIST NEWSGROUPS comp.*", "215").await;
    assert_eq!(
        lines,
        vec![
            "comp.archive\tOld articles, read only.",
            "comp.lang.rust\tThe Rust programming language.",
        ]
    );
    let (_, after) = c.cmd_block("LIST NEWSGROUPS local.test", "215").await;
    assert_eq!(after, before, "an existing group's description was changed");
    let status = c
        .post(&article("comp.lang.rust", "imported", "hello\r\n"))
        .await;
    assert!(status.starts_with("240"), "{status}");
    let status = c
        .post(&article("comp.archive", "read only", "no\r\n"))
        .await;
    assert!(status.starts_with("441"), "{status}");

    let mut again = args.to_vec();
    again.push("--json");
    let run = tidings(&config, &again).await;
    assert!(run.ok, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["created"], 0);
    assert_eq!(v["existing"], 4);
    assert_eq!(v["described"], 0);
    assert_eq!(v["skipped"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["skipped"][0]["line"], 5);

    for (args, needle) in [
        (vec!["group", "import"], "nothing to import"),
        (
            vec!["group", "import", "--active", "/nonexistent/active"],
            "cannot read /nonexistent/active",
        ),
    ] {
        let run = tidings(&config, &args).await;
        assert!(!run.ok, "{args:?} succeeded");
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
    server.stop().await;
}

/// `check` names what the server would stumble on: an unreadable TLS
/// certificate, a mail program that is not there while groups have
/// moderators; the same program with no moderator is only a warning.
#[tokio::test]
async fn check_names_the_files_and_programs_a_configuration_lacks() {
    let server = TestServer::start().await;
    let good = admin_config(&server, "");
    let run = tidings(&good, &["check"]).await;
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("configuration is valid"),
        "{}",
        run.stdout
    );
    let db = server.db_path().display().to_string();
    assert!(
        run.stdout.contains(&format!("database:      {db} (")),
        "{}",
        run.stdout
    );
    // The space the WAL takes besides the database (admin_config sets it).
    assert!(
        run.stdout.contains(&format!(
            "disk:          WAL {} MiB while the server runs; database up to the disk's size",
            common::TEST_WAL_MIB
        )),
        "{}",
        run.stdout
    );

    let no_mailer = "[moderation]\nmta = [\"/nonexistent/mailer\", \"-oi\"]\n";
    let run = tidings(&admin_config(&server, no_mailer), &["check"]).await;
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("warning: [moderation] mta: no program /nonexistent/mailer"),
        "{}",
        run.stdout
    );

    let bad = format!(
        "{no_mailer}[[moderation.moderator]]\ngroups = \"local.*\"\naddress = \"%s@example.com\"\n\
         [tls]\ncertificate = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n"
    );
    let run = tidings(&admin_config(&server, &bad), &["check"]).await;
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stderr.contains("2 problem(s)"), "{}", run.stderr);
    for needle in [
        "problem: [tls]: ",
        "/nonexistent/cert.pem",
        "problem: [moderation] mta: no program /nonexistent/mailer",
    ] {
        assert!(run.stdout.contains(needle), "{needle}: {}", run.stdout);
    }
    server.stop().await;
}

/// `backup` copies the database of a server that goes on taking posts
/// meanwhile; a server started on the copy serves every article the copy
/// holds, numbered without gaps, and takes new posts; the original loses
/// nothing; a backup never overwrites a file.
#[tokio::test]
async fn backup_copies_a_running_server_s_database_consistently() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let server = TestServer::start().await;
    let config = config_file(&server);
    let mut c = server.client().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let status = c
            .post(&article("local.test", &format!("before {i}"), "b\r\n"))
            .await;
        ids.push(posted_id(&status));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let poster = {
        let stop = stop.clone();
        let addr = server.addr;
        tokio::spawn(async move {
            let mut c = common::Client::connect(addr).await;
            let mut posted = 0;
            while !stop.load(Ordering::Relaxed) {
                let status = c.post(&article("local.test", "during", "d\r\n")).await;
                assert!(status.starts_with("240"), "{status}");
                posted += 1;
            }
            posted
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let copy = server.dir.path().join("copy.db");
    let copy_arg = copy.to_string_lossy().into_owned();
    let run = tidings(&config, &["backup", &copy_arg]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("backed up"), "{}", run.stdout);
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let during = poster.await.expect("poster");
    assert!(during > 0, "nothing was posted during the backup");

    let again = tidings(&config, &["backup", &copy_arg]).await;
    assert!(!again.ok);
    assert!(again.stderr.contains("exists"), "{}", again.stderr);
    let (_, originals) = c.cmd_block("LISTGROUP local.test", "211").await;
    assert_eq!(originals.len(), 20 + during, "the original lost articles");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut restored = Config::default();
    restored.server.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    restored.storage.database = copy.clone();
    let restored = TestServer::start_in(dir, restored).await;
    let mut r = restored.client().await;
    for id in &ids {
        assert!(
            r.cmd(&format!("STAT {id}")).await.starts_with("223"),
            "{id} missing"
        );
    }
    let (status, numbers) = r.cmd_block("LISTGROUP local.test", "211").await;
    let held = numbers.len();
    assert!((20..=20 + during).contains(&held), "{status}");
    let expected: Vec<String> = (1..=held).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expected, "the copy's numbers have gaps");
    for n in &numbers {
        assert!(r.cmd(&format!("ARTICLE {n}")).await.starts_with("220"));
        r.block().await;
    }
    let status = r
        .post(&article("local.test", "after restore", "a\r\n"))
        .await;
    assert!(status.starts_with("240"), "{status}");
    let (status, _) = r.cmd_block("LISTGROUP local.test", "211").await;
    assert!(
        status.starts_with(&format!("211 {} 1 {} ", held + 1, held + 1)),
        "{status}"
    );
    restored.stop().await;
    server.stop().await;
}
