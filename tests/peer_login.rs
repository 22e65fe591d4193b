//! Peers that log in (RFC 4643 AUTHINFO) instead of being known by their
//! address: a `[[peer]] login` feeds us from anywhere once it has logged
//! in, and `feed_user` / `feed_password` log our feeder in to a peer that
//! wants it (INN's passwd.nntp). Real servers on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, article, free_port, local, node, posted_id, reader};
use tidings::config::{Config, PeerConfig};

/// A `[[peer]]` from its TOML keys (after name and path identity).
fn peer_with(name: &str, keys: &str) -> PeerConfig {
    let text = format!("[[peer]]\nname = \"{name}\"\npath_identity = \"{name}.test\"\n{keys}");
    Config::parse(&text).expect("peer config").peers.remove(0)
}

async fn count(server: &TestServer, group: &str) -> u64 {
    let g = server.server().store().group(group).await.expect("store");
    g.expect("group").count
}

/// B takes a feed from "a" only once it logs in as feed-a: no
/// `accept_from`, so its address alone gets it nothing.
async fn b_taking_logins() -> (TestServer, u16) {
    let pb = free_port();
    let b = node("b", pb, vec![peer_with("a", "login = \"feed-a\"\n")], &[]).await;
    b.add_user("feed-a", "s3cret!").await;
    b.add_user("reader", "r3ader").await;
    (b, pb)
}

#[tokio::test]
async fn a_peer_known_by_its_login_feeds_us_from_any_address() {
    let (b, pb) = b_taking_logins().await;
    let a = node(
        "a",
        free_port(),
        vec![peer_with(
            "b",
            &format!(
                "address = \"{}\"\nfeed_user = \"feed-a\"\nfeed_password = \"s3cret!\"\n",
                local(pb)
            ),
        )],
        &[],
    )
    .await;
    let mut poster = reader(a.addr).await;
    let id = posted_id(
        &poster
            .post(&article("local.test", "fed after a login", "hello\r\n"))
            .await,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&b, "local.test").await < 1 {
        assert!(Instant::now() < deadline, "the article never reached B");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut rb = reader(b.addr).await;
    let (status, head) = rb.cmd_block(&format!("HEAD {id}"), "221").await;
    assert!(status.starts_with("221"), "{status}");
    let path = head.iter().find(|l| l.starts_with("Path: ")).expect("Path");
    assert!(path.starts_with("Path: b.test!a.test!"), "{path}");
    assert_eq!(count(&b, "local.test").await, 1);

    // The raw view: before a login, transit is 480 (a login may help);
    // an ordinary user's login does not make a peer (502); the peer's
    // login does, and CAPABILITIES then offers what it may use.
    let mut c = reader(b.addr).await;
    assert!(c.cmd("CHECK <raw-1@test>").await.starts_with("480 "));
    assert!(c.cmd("IHAVE <raw-1@test>").await.starts_with("480 "));
    assert!(c.cmd("MODE STREAM").await.starts_with("480 "));
    // TAKETHIS alike, its article read and dropped.
    let text = article("local.test", "too early", "QUIT\r\n");
    c.send(format!("TAKETHIS <raw-1@test>\r\n{text}.\r\n").as_bytes())
        .await;
    assert!(c.line().await.starts_with("480 "));
    assert!(c.cmd("AUTHINFO USER reader").await.starts_with("381 "));
    assert!(c.cmd("AUTHINFO PASS r3ader").await.starts_with("281 "));
    assert!(c.cmd("CHECK <raw-1@test>").await.starts_with("502 "));
    assert!(c.cmd("IHAVE <raw-1@test>").await.starts_with("502 "));
    let mut p = reader(b.addr).await;
    assert!(p.cmd("AUTHINFO USER feed-a").await.starts_with("381 "));
    assert!(p.cmd("AUTHINFO PASS s3cret!").await.starts_with("281 "));
    let (_, caps) = p.cmd_block("CAPABILITIES", "101").await;
    assert!(caps.iter().any(|l| l == "STREAMING"), "{caps:?}");
    assert_eq!(p.cmd("CHECK <raw-1@test>").await, "238 <raw-1@test>");
    assert_eq!(p.cmd(&format!("CHECK {id}")).await, format!("438 {id}"));
}

#[tokio::test]
async fn a_wrong_feed_password_feeds_nothing_and_a_reload_with_the_right_one_does() {
    let (b, pb) = b_taking_logins().await;
    let keys = |password: &str| {
        format!(
            "address = \"{}\"\nfeed_user = \"feed-a\"\nfeed_password = \"{password}\"\n\
             max_backoff_secs = 1\n",
            local(pb)
        )
    };
    let mut a = node("a", free_port(), vec![peer_with("b", &keys("wrong"))], &[]).await;
    let mut poster = reader(a.addr).await;
    let status = poster
        .post(&article("local.test", "held back", "not yet\r\n"))
        .await;
    assert!(status.starts_with("240"), "{status}");

    // The feeder says why it cannot feed, and the password is nowhere in it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let error = loop {
        let state = a.server().store().peer_state("b").await.expect("state");
        if let Some(e) = state.last_error.filter(|e| e.contains("481")) {
            break e;
        }
        assert!(Instant::now() < deadline, "no login error recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(error.contains("feed-a"), "{error}");
    assert!(!error.contains("wrong"), "the password leaked: {error}");
    assert_eq!(count(&b, "local.test").await, 0);

    // The right password, by reload: the backlog goes through.
    let mut config = a.config.clone();
    config.peers = vec![peer_with("b", &keys("s3cret!"))];
    a.server_mut().reload(config);
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&b, "local.test").await < 1 {
        assert!(Instant::now() < deadline, "the backlog never reached B");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn logins_and_feed_credentials_are_checked_and_never_shown() {
    let bad = |keys: &str| {
        Config::parse(&format!(
            "[[peer]]\nname = \"x\"\npath_identity = \"x.test\"\n{keys}"
        ))
        .expect_err(keys)
    };
    assert!(bad("feed_password = \"p\"\n").contains("feed_password needs feed_user"));
    // A login is one of our users: the rule of `tidings user add`.
    assert!(bad("login = \"two words\"\n").contains("login must be a user name"));
    assert!(bad("login = \"j\u{f6}rg\"\n").contains("login must be a user name"));
    assert!(
        bad(&format!("login = \"{}\"\n", "x".repeat(65))).contains("login must be a user name")
    );
    assert!(bad("feed_user = \"\"\n").contains("feed_user must be one word"));
    let twice = Config::parse(
        "[[peer]]\nname = \"x\"\npath_identity = \"x.test\"\nlogin = \"l\"\n\
         [[peer]]\nname = \"y\"\npath_identity = \"y.test\"\nlogin = \"l\"\n",
    )
    .expect_err("one login for two peers");
    assert!(twice.contains("another peer's login"), "{twice}");
    let p = peer_with("x", "feed_user = \"u\"\nfeed_password = \"hunter2\"\n");
    assert!(!format!("{p:?}").contains("hunter2"));
}

/// `tidings peer list --json` names the logins, never the password.
#[tokio::test]
async fn peer_list_shows_logins_but_no_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::binary_config(
        dir.path(),
        "a",
        "[[peer]]\nname = \"b\"\npath_identity = \"b.test\"\naddress = \"127.0.0.1:9\"\n\
         feed_user = \"us\"\nfeed_password = \"hunter2\"\n\
         accept_from = [\"192.0.2.10\", \"2001:db8::/64\"]\nmax_article_size = 65536\n\
         distributions = [\"world\", \"!local\"]\n\
         [[peer]]\nname = \"c\"\npath_identity = \"c.test\"\nlogin = \"feed-c\"\n",
    );
    let run = common::tidings(&config, &["peer", "list", "--json"]).await;
    assert!(run.ok, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v[0]["feed_user"], "us");
    assert_eq!(v[0]["window"], 256, "{}", run.stdout);
    assert_eq!(v[0]["streaming"], true);
    assert_eq!(v[0]["tls"], false);
    assert_eq!(
        v[0]["accept_from"],
        serde_json::json!(["192.0.2.10", "2001:db8::/64"])
    );
    assert_eq!(
        v[0]["distributions"],
        serde_json::json!(["world", "!local"])
    );
    assert_eq!(v[0]["max_article_size"], 65536);
    assert_eq!(v[1]["max_article_size"], serde_json::Value::Null);
    assert_eq!(v[1]["login"], "feed-c");
    assert!(!run.stdout.contains("hunter2"), "{}", run.stdout);
}
