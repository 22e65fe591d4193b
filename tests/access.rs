//! Access rules and limits (issue 4): who may read and post what, by
//! client network and user; rates and volumes; connections per address;
//! header counts. Rules here are written for 127.0.0.2-127.0.0.9, so the
//! test itself can post from 127.0.0.1 freely.

mod common;

use common::{Client, TestServer, article, posted_id};
use tidings::auth::hash_password;
use tidings::config::Config;
use tokio::net::TcpSocket;

fn code(line: &str) -> &str {
    line.get(..3).unwrap_or(line)
}

/// A server with the given `[[access]]` rules (TOML) and limits.
async fn server_with(rules: &str, f: impl FnOnce(&mut Config)) -> TestServer {
    let rules = Config::parse(rules).expect("rules").access;
    TestServer::start_with(move |c| {
        c.access = rules;
        f(c);
    })
    .await
}

#[tokio::test]
async fn a_denied_network_gets_502_at_the_greeting() {
    let s = server_with(
        "[[access]]\nnetworks = [\"127.0.0.2\"]\ndeny = true\n",
        |_| {},
    )
    .await;
    let mut denied = Client::connect_from("127.0.0.2", s.addr).await;
    assert_eq!(code(&denied.greeting), "502");
    assert!(
        denied.read_to_end().await.is_empty(),
        "closed after the 502"
    );
    let other = Client::connect_from("127.0.0.3", s.addr).await;
    assert_eq!(code(&other.greeting), "200");
    s.stop().await;
}

#[tokio::test]
async fn a_reader_sees_only_the_groups_and_articles_it_may_read() {
    let s = server_with(
        "[[access]]\nnetworks = [\"127.0.0.2\"]\nread = \"local.*,!local.test\"\npost = \"local.general\"\n",
        |_| {},
    )
    .await;
    let mut admin = s.client().await;
    let hidden = posted_id(&admin.post(&article("local.test", "hidden", "h\r\n")).await);
    let both = posted_id(
        &admin
            .post(&article("local.test,local.general", "crossed", "b\r\n"))
            .await,
    );

    let mut r = Client::connect_from("127.0.0.2", s.addr).await;
    let (_, active) = r.cmd_block("LIST ACTIVE", "215").await;
    let names: Vec<&str> = active.iter().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(names, ["local.announce", "local.general"]);
    let (_, newsgroups) = r.cmd_block("LIST NEWSGROUPS", "215").await;
    assert!(!newsgroups.iter().any(|l| l.starts_with("local.test")));
    let (_, titles) = r.cmd_block("XGTITLE local.*", "282").await;
    assert!(
        !titles.is_empty() && !titles.iter().any(|l| l.starts_with("local.test")),
        "{titles:?}"
    );
    let (_, new) = r.cmd_block("NEWGROUPS 20000101 000000", "231").await;
    assert!(!new.iter().any(|l| l.starts_with("local.test")), "{new:?}");
    assert_eq!(code(&r.cmd("GROUP local.test").await), "411");
    assert_eq!(code(&r.cmd("LISTGROUP local.test").await), "411");
    for cmd in ["ARTICLE", "HEAD", "BODY", "STAT"] {
        assert_eq!(
            code(&r.cmd(&format!("{cmd} {hidden}")).await),
            "430",
            "{cmd}"
        );
    }
    assert_eq!(code(&r.cmd(&format!("OVER {hidden}")).await), "430");
    assert_eq!(code(&r.cmd(&format!("HDR Subject {hidden}")).await), "430");
    // Cross-posted to a readable group: visible.
    assert_eq!(code(&r.cmd(&format!("STAT {both}")).await), "223");
    let (_, ids) = r.cmd_block("NEWNEWS local.* 20000101 000000", "230").await;
    assert_eq!(ids, std::slice::from_ref(&both));

    // Posting: only where the rule allows.
    let refused = r.post(&article("local.test", "no", "x\r\n")).await;
    assert_eq!(code(&refused), "441", "{refused}");
    assert!(refused.contains("not allowed"), "{refused}");
    let ok = r.post(&article("local.general", "yes", "y\r\n")).await;
    assert_eq!(code(&ok), "240", "{ok}");
    s.stop().await;
}

#[tokio::test]
async fn a_rule_without_posting_greets_201_and_refuses_post_with_440() {
    let s = server_with(
        "[[access]]\nnetworks = [\"127.0.0.2\"]\npost = \"\"\n",
        |_| {},
    )
    .await;
    let mut r = Client::connect_from("127.0.0.2", s.addr).await;
    assert_eq!(code(&r.greeting), "201");
    let (_, caps) = r.cmd_block("CAPABILITIES", "101").await;
    assert!(!caps.contains(&"POST".to_owned()), "{caps:?}");
    assert_eq!(code(&r.cmd("POST").await), "440");
    assert_eq!(code(&r.cmd("GROUP local.test").await), "211");
    s.stop().await;
}

#[tokio::test]
async fn users_get_their_own_rule_once_logged_in() {
    let s = server_with(
        "[[access]]\nusers = \"staff.*\"\nread = \"*\"\n\
         [[access]]\nnetworks = [\"127.0.0.2\"]\nlogin_required = true\nread = \"local.general\"\n",
        |_| {},
    )
    .await;
    let hash = hash_password("pw").expect("hash");
    let store = s.server().store();
    store.add_user("staff.ann", &hash).await.expect("user");
    store.add_user("guest", &hash).await.expect("user");

    let mut r = Client::connect_from("127.0.0.2", s.addr).await;
    assert_eq!(code(&r.cmd("GROUP local.general").await), "480");
    assert_eq!(code(&r.cmd("AUTHINFO USER guest").await), "381");
    assert_eq!(code(&r.cmd("AUTHINFO PASS pw").await), "281");
    assert_eq!(code(&r.cmd("GROUP local.general").await), "211");
    assert_eq!(code(&r.cmd("GROUP local.test").await), "411");

    let mut staff = Client::connect_from("127.0.0.2", s.addr).await;
    assert_eq!(code(&staff.cmd("AUTHINFO USER staff.ann").await), "381");
    assert_eq!(code(&staff.cmd("AUTHINFO PASS pw").await), "281");
    assert_eq!(code(&staff.cmd("GROUP local.test").await), "211");
    s.stop().await;
}

#[tokio::test]
async fn posting_rate_and_download_volume_are_limited() {
    let s = server_with(
        "[[access]]\nnetworks = [\"127.0.0.2\"]\nposts_per_minute = 2\ndownload_bytes_per_day = 1500\n",
        |_| {},
    )
    .await;
    let mut r = Client::connect_from("127.0.0.2", s.addr).await;
    let body = "x".repeat(500) + "\r\n";
    let first = posted_id(&r.post(&article("local.test", "1", &body)).await);
    posted_id(&r.post(&article("local.test", "2", &body)).await);
    let third = r.post(&article("local.test", "3", &body)).await;
    assert_eq!(code(&third), "441", "{third}");
    assert!(third.contains("rate"), "{third}");

    // ~900 octets per ARTICLE: the second would pass 1,500 for the day.
    assert_eq!(code(&r.cmd(&format!("ARTICLE {first}")).await), "220");
    r.block().await;
    let over = r.cmd(&format!("ARTICLE {first}")).await;
    assert_eq!(code(&over), "502", "{over}");
    // HEAD and STAT do not count; another address is not affected.
    assert_eq!(code(&r.cmd(&format!("STAT {first}")).await), "223");
    let mut other = Client::connect_from("127.0.0.3", s.addr).await;
    assert_eq!(code(&other.cmd(&format!("ARTICLE {first}")).await), "220");
    s.stop().await;
}

#[tokio::test]
async fn connections_per_address_are_limited() {
    let s = server_with("", |c| c.limits.max_connections_per_address = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let c = Client::connect_from("127.0.0.6", s.addr).await;
        assert_eq!(code(&c.greeting), "200");
        held.push(c);
    }
    let mut fourth = Client::connect_from("127.0.0.6", s.addr).await;
    assert_eq!(code(&fourth.greeting), "400");
    assert!(fourth.read_to_end().await.is_empty());
    let other = Client::connect_from("127.0.0.7", s.addr).await;
    assert_eq!(code(&other.greeting), "200");
    // A connection that ends gives its place back.
    let mut gone = held.pop().expect("held");
    assert_eq!(code(&gone.cmd("QUIT").await), "205");
    drop(gone);
    let mut again = None;
    for _ in 0..50 {
        let c = Client::connect_from("127.0.0.6", s.addr).await;
        if code(&c.greeting) == "200" {
            again = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the place was not given back");
    s.stop().await;
}

#[tokio::test]
async fn an_article_with_too_many_header_fields_is_refused() {
    let s = server_with("", |c| c.limits.max_header_count = 10).await;
    let mut c = s.client().await;
    let mut many = String::from("From: a@example.com\r\nNewsgroups: local.test\r\nSubject: s\r\n");
    for i in 0..20 {
        many.push_str(&format!("X-Extra-{i}: v\r\n"));
    }
    many.push_str("\r\nbody\r\n");
    let status = c.post(&many).await;
    assert_eq!(code(&status), "441", "{status}");
    assert!(status.contains("too many header fields"), "{status}");
    assert_eq!(
        code(&c.post(&article("local.test", "few", "b\r\n")).await),
        "240"
    );
    s.stop().await;
}

/// A client trickling a command a byte at a time is cut off after
/// `command_timeout_secs`, while others are served as usual.
#[tokio::test]
async fn a_slowloris_client_is_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server_with("", |c| c.limits.command_timeout_secs = 1).await;
    let mut slow = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connect");
    let mut greeting = [0u8; 256];
    let n = slow.read(&mut greeting).await.expect("greeting");
    assert!(greeting[..n].starts_with(b"200"));
    let started = std::time::Instant::now();
    let mut cut_off = false;
    for b in b"GROUP local.test and on and on and on\r\n" {
        if slow.write_all(&[*b]).await.is_err() {
            cut_off = true;
            break;
        }
        // Meanwhile another client is served at once.
        let mut other = s.client().await;
        let t = std::time::Instant::now();
        assert_eq!(code(&other.cmd("DATE").await), "111");
        assert!(t.elapsed() < std::time::Duration::from_millis(500));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut buf = [0u8; 256];
        if let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(1), slow.read(&mut buf)).await
        {
            // The server said goodbye (400) or closed.
            assert!(n == 0 || buf[..n].starts_with(b"400"), "{:?}", &buf[..n]);
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "the slow client was never cut off");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    s.stop().await;
}

/// 10,000 connection attempts from one address: all but the few it may
/// hold are turned away with 400, the server stays up and others are
/// served.
#[tokio::test]
async fn ten_thousand_connection_attempts_from_one_address_are_turned_away() {
    use tokio::io::AsyncReadExt;
    let s = server_with("", |c| c.limits.max_connections_per_address = 5).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(Client::connect_from("127.0.0.8", s.addr).await);
    }
    let mut refused = 0;
    for _ in 0..10_000 {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.8:0".parse().expect("addr"))
            .expect("bind");
        let Ok(mut stream) = socket.connect(s.addr).await else {
            continue;
        };
        let mut buf = [0u8; 64];
        if let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await
            && buf[..n].starts_with(b"400")
        {
            refused += 1;
        }
    }
    assert!(refused >= 9_990, "only {refused} turned away");
    let mut other = Client::connect_from("127.0.0.9", s.addr).await;
    assert_eq!(code(&other.greeting), "200");
    assert_eq!(code(&other.cmd("GROUP local.test").await), "211");
    for c in &mut held {
        assert_eq!(code(&c.cmd("DATE").await), "111");
    }
    s.stop().await;
}

/// An access rule can withhold transit from a configured peer's network.
#[tokio::test]
async fn a_rule_can_withhold_transit_from_a_peer() {
    let peer = Config::parse(
        "[[peer]]\nname = \"p\"\npath_identity = \"p.test\"\naccept_from = [\"127.0.0.2\", \"127.0.0.3\"]\n",
    )
    .expect("peer")
    .peers;
    let s = server_with(
        "[[access]]\nnetworks = [\"127.0.0.2\"]\ntransit = false\n",
        move |c| {
            c.peers = peer;
        },
    )
    .await;
    let mut withheld = Client::connect_from("127.0.0.2", s.addr).await;
    let (_, caps) = withheld.cmd_block("CAPABILITIES", "101").await;
    assert!(!caps.contains(&"IHAVE".to_owned()), "{caps:?}");
    assert_eq!(code(&withheld.cmd("MODE STREAM").await), "502");
    assert_eq!(code(&withheld.cmd("IHAVE <t@x>").await), "502");
    let mut allowed = Client::connect_from("127.0.0.3", s.addr).await;
    let (_, caps) = allowed.cmd_block("CAPABILITIES", "101").await;
    assert!(caps.contains(&"IHAVE".to_owned()), "{caps:?}");
    assert_eq!(code(&allowed.cmd("MODE STREAM").await), "203");
    s.stop().await;
}
