//! Federation: several real servers on loopback, peered, flooding articles
//! to each other (IHAVE, RFC 4644 streaming), with message-id dedup and Path
//! loop prevention; and the transit commands' answer codes, raw.
//!
//! Every server listens on 127.0.0.1; feeders connect from 127.0.0.1, so a
//! peer's `accept_from` is 127.0.0.1. Readers that must not be taken for
//! peers connect from another loopback address (127.0.0.2).

mod common;

use std::time::{Duration, Instant};

use common::{
    Client, TestServer, article, free_port, local, node, peer, peer_from, posted_id, reader,
};

/// Waits until `group` on `server` holds `count` articles (or fails).
async fn wait_for_count(server: &TestServer, group: &str, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let g = server
            .server()
            .store()
            .group(group)
            .await
            .expect("store")
            .expect("group");
        if g.count >= count {
            assert_eq!(g.count, count, "{group} has more articles than expected");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{group} has {} of {count} articles",
            g.count
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `server` has recorded `count` articles accepted by `peer`
/// (or fails). A feeder records a round once its last answer is in, just
/// after the peer has the article.
async fn wait_for_accepted(server: &TestServer, peer: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = server
            .server()
            .store()
            .peer_state(peer)
            .await
            .expect("state");
        if state.accepted >= count {
            assert_eq!(state.accepted, count, "more accepted than offered");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} recorded accepted",
            state.accepted
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn head_of(c: &mut Client, id: &str) -> Vec<String> {
    let (status, lines) = c.cmd_block(&format!("HEAD {id}"), "221").await;
    assert!(status.starts_with("221"), "HEAD {id}: {status}");
    lines
}

fn header<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}

#[tokio::test]
async fn a_chain_carries_an_article_to_the_end_with_the_route_in_path() {
    let (a, b, c) = common::chain().await;

    let mut poster = reader(a.addr).await;
    let id = posted_id(
        &poster
            .post(&article("local.test", "chain", "hop hop\r\n"))
            .await,
    );
    wait_for_count(&b, "local.test", 1).await;
    wait_for_count(&c, "local.test", 1).await;

    let mut rc = reader(c.addr).await;
    let lines = head_of(&mut rc, &id).await;
    assert_eq!(
        header(&lines, "Path"),
        "c.test!b.test!a.test!.POSTED!not-for-mail"
    );
    assert_eq!(header(&lines, "Xref"), "c.test local.test:1");
    let (_, body) = rc.cmd_block(&format!("BODY {id}"), "222").await;
    assert_eq!(body, vec!["hop hop"]);

    // Nothing flows back: A still has exactly its one article.
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_for_count(&a, "local.test", 1).await;
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

/// A free TCP port on ::1.
fn free_port_v6() -> u16 {
    let l = std::net::TcpListener::bind("[::1]:0").expect("bind ::1");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn peers_and_readers_reach_each_other_over_ipv6_and_a_dual_stack_listener() {
    // C (127.0.0.1) feeds A, which listens on [::] (dual stack: C shows
    // there as ::ffff:127.0.0.1 and must still be the peer its
    // accept_from names); A feeds B at [::1], which takes A's feed from ::1.
    // A reader on ::1 reads the article on B.
    let (pa, pb, pc) = (free_port(), free_port_v6(), free_port());
    let b = TestServer::start_with(|cfg| {
        cfg.server.listen = vec![format!("[::1]:{pb}").parse().expect("addr")];
        cfg.server.path_identity = "b.test".to_owned().try_into().expect("identity");
        cfg.peers = vec![peer_from("a", None, "*", "::1")];
    })
    .await;
    let a = TestServer::start_with(|cfg| {
        cfg.server.listen = vec![format!("[::]:{pa}").parse().expect("addr")];
        cfg.server.path_identity = "a.test".to_owned().try_into().expect("identity");
        cfg.peers = vec![
            peer("c", None, "*"),
            // B feeds A nothing: its accept_from is an address no test uses.
            peer_from(
                "b",
                Some(format!("[::1]:{pb}").parse().expect("addr")),
                "*",
                "::2",
            ),
        ];
    })
    .await;
    let c = node("c", pc, vec![peer("a", Some(local(pa)), "*")], &[]).await;

    let mut poster = reader(c.addr).await;
    let id = posted_id(
        &poster
            .post(&article("local.test", "over v6", "six\r\n"))
            .await,
    );
    wait_for_count(&a, "local.test", 1).await;
    wait_for_count(&b, "local.test", 1).await;

    let mut on_b = Client::connect(b.addr).await;
    assert!(b.addr.is_ipv6(), "{}", b.addr);
    let lines = head_of(&mut on_b, &id).await;
    assert_eq!(
        header(&lines, "Path"),
        "b.test!a.test!c.test!.POSTED!not-for-mail"
    );
    // ::1 is no peer of A: transit commands are not for it.
    let mut stranger = Client::connect(format!("[::1]:{pa}").parse().expect("addr")).await;
    assert!(stranger.cmd("MODE STREAM").await.starts_with("502"));
    c.stop().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_triangle_delivers_each_article_exactly_once_everywhere() {
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let a = node(
        "a",
        pa,
        vec![
            peer("b", Some(local(pb)), "*"),
            peer("c", Some(local(pc)), "*"),
        ],
        &[],
    )
    .await;
    let b = node(
        "b",
        pb,
        vec![
            peer("a", Some(local(pa)), "*"),
            peer("c", Some(local(pc)), "*"),
        ],
        &[],
    )
    .await;
    let c = node(
        "c",
        pc,
        vec![
            peer("a", Some(local(pa)), "*"),
            peer("b", Some(local(pb)), "*"),
        ],
        &[],
    )
    .await;

    let mut ids = Vec::new();
    for (i, s) in [&a, &b, &c].into_iter().enumerate() {
        let mut poster = reader(s.addr).await;
        for k in 0..5 {
            let text = article("local.test", &format!("from {i} number {k}"), "x\r\n");
            ids.push(posted_id(&poster.post(&text).await));
        }
    }
    for s in [&a, &b, &c] {
        wait_for_count(s, "local.test", 15).await;
    }
    // Settle, then check again: no duplicates arrived late.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for s in [&a, &b, &c] {
        wait_for_count(s, "local.test", 15).await;
        let mut r = reader(s.addr).await;
        for id in &ids {
            assert!(
                r.cmd(&format!("STAT {id}")).await.starts_with("223"),
                "{id}"
            );
        }
        let (_, numbers) = r.cmd_block("LISTGROUP local.test", "211").await;
        assert_eq!(numbers.len(), 15);
    }
    // The route is in each copy's Path: the server that holds it first,
    // the one it was posted on last.
    let names = ["a", "b", "c"];
    for (holder, s) in [&a, &b, &c].into_iter().enumerate() {
        let mut r = reader(s.addr).await;
        for (origin, id) in ids.iter().step_by(5).enumerate() {
            let path = header(&head_of(&mut r, id).await, "Path").to_owned();
            let route: Vec<&str> = path.split('!').take_while(|e| *e != ".POSTED").collect();
            assert_eq!(
                route.first(),
                Some(&format!("{}.test", names[holder]).as_str()),
                "{path}"
            );
            assert_eq!(
                route.last(),
                Some(&format!("{}.test", names[origin]).as_str()),
                "{path}"
            );
            assert!(route.len() <= 3, "{path}");
        }
    }
    // Never fed back: a server offers a peer only what the peer's name is
    // not in the Path of, so never the peer's own five (at most its own
    // five and the third server's).
    for (s, peers) in [(&a, ["b", "c"]), (&b, ["a", "c"]), (&c, ["a", "b"])] {
        for p in peers {
            let state = s.server().store().peer_state(p).await.expect("state");
            assert!(state.offered <= 10, "offered to {p}: {state:?}");
        }
    }
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn a_peer_gets_only_the_groups_its_pattern_allows() {
    let (pa, pb) = (free_port(), free_port());
    let groups = ["comp.lang.rust", "comp.secret.plans", "rec.food"];
    let b = node("b", pb, vec![peer("a", None, "*")], &groups).await;
    let a = node(
        "a",
        pa,
        vec![peer("b", Some(local(pb)), "comp.*,!comp.secret.*")],
        &groups,
    )
    .await;
    let mut poster = reader(a.addr).await;
    let rust = posted_id(&poster.post(&article("comp.lang.rust", "ok", "a\r\n")).await);
    let secret = posted_id(
        &poster
            .post(&article("comp.secret.plans", "no", "b\r\n"))
            .await,
    );
    let food = posted_id(&poster.post(&article("rec.food", "no", "c\r\n")).await);
    let both = posted_id(
        &poster
            .post(&article(
                "comp.secret.plans,comp.lang.rust",
                "crossed",
                "d\r\n",
            ))
            .await,
    );
    wait_for_count(&b, "comp.lang.rust", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut r = reader(b.addr).await;
    assert!(r.cmd(&format!("STAT {rust}")).await.starts_with("223"));
    assert!(r.cmd(&format!("STAT {both}")).await.starts_with("223"));
    assert!(r.cmd(&format!("STAT {secret}")).await.starts_with("430"));
    assert!(r.cmd(&format!("STAT {food}")).await.starts_with("430"));
    b.stop().await;
    a.stop().await;
}

/// A peer's `max_article_size` and `distributions` hold back what it is
/// not to get, through a real feeder: larger articles, and articles whose
/// Distribution it does not take; everything else reaches it.
#[tokio::test]
async fn a_peer_gets_only_the_sizes_and_distributions_it_takes() {
    let (pa, pb) = (free_port(), free_port());
    let b = node("b", pb, vec![peer("a", None, "*")], &[]).await;
    let mut to_b = peer("b", Some(local(pb)), "*");
    to_b.max_article_size = Some(2000);
    to_b.distributions = vec!["world".into(), "!local".into()];
    let a = node("a", pa, vec![to_b], &[]).await;
    let mut poster = reader(a.addr).await;
    let text = |extra: &str, body: &str| {
        format!(
            "From: Tester <tester@example.com>\r\nNewsgroups: local.test\r\n\
             Subject: sized\r\n{extra}\r\n{body}"
        )
    };
    let long_body = format!("{}\r\n", "x".repeat(60)).repeat(40);
    let mut sent = Vec::new();
    let mut held = Vec::new();
    sent.push(posted_id(&poster.post(&text("", "short\r\n")).await));
    held.push(posted_id(&poster.post(&text("", &long_body)).await));
    sent.push(posted_id(
        &poster.post(&text("Distribution: world\r\n", "w\r\n")).await,
    ));
    held.push(posted_id(
        &poster.post(&text("Distribution: local\r\n", "l\r\n")).await,
    ));
    held.push(posted_id(
        &poster.post(&text("Distribution: fr\r\n", "f\r\n")).await,
    ));
    wait_for_count(&b, "local.test", sent.len() as u64).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_for_count(&b, "local.test", sent.len() as u64).await;
    let mut r = reader(b.addr).await;
    for id in &sent {
        assert!(
            r.cmd(&format!("STAT {id}")).await.starts_with("223"),
            "{id}"
        );
    }
    for id in &held {
        assert!(
            r.cmd(&format!("STAT {id}")).await.starts_with("430"),
            "{id}"
        );
    }
    b.stop().await;
    a.stop().await;
}

/// A reload that takes a peer out of the configuration stops its feeder
/// (nothing more is sent, the feed shows as not connected) and keeps its
/// place in the log: put back, the peer gets what was posted meanwhile.
#[tokio::test]
async fn a_peer_taken_out_by_a_reload_is_no_longer_fed_and_keeps_its_place() {
    let (pa, pb) = (free_port(), free_port());
    let b = node("b", pb, vec![peer("a", None, "*")], &[]).await;
    let mut a = node("a", pa, vec![peer("b", Some(local(pb)), "*")], &[]).await;
    let mut poster = reader(a.addr).await;
    let first = posted_id(&poster.post(&article("local.test", "one", "1\r\n")).await);
    wait_for_count(&b, "local.test", 1).await;

    let mut without = a.config.clone();
    without.peers.clear();
    a.server_mut().reload(without);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = a.server().store().peer_state("b").await.expect("state");
        if state.connected_at.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "still connected: {state:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = posted_id(&poster.post(&article("local.test", "two", "2\r\n")).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut r = reader(b.addr).await;
    assert!(r.cmd(&format!("STAT {first}")).await.starts_with("223"));
    assert!(
        r.cmd(&format!("STAT {second}")).await.starts_with("430"),
        "fed after removal"
    );

    let with = a.config.clone();
    a.server_mut().reload(with);
    wait_for_count(&b, "local.test", 2).await;
    assert!(r.cmd(&format!("STAT {second}")).await.starts_with("223"));
    wait_for_accepted(&a, "b", 2).await;
    b.stop().await;
    a.stop().await;
}

/// The feeder reads the log in rounds bounded in bytes as well as in
/// articles, so a backlog of large articles is never read into memory
/// whole; a peer still gets every one of them, over several rounds.
#[tokio::test]
async fn a_backlog_of_large_articles_goes_out_in_rounds_bounded_in_bytes() {
    let (pa, pc) = (free_port(), free_port());
    let a = node("a", pa, vec![peer("c", Some(local(pc)), "*")], &[]).await;
    let mut poster = reader(a.addr).await;
    let line = "y".repeat(998) + "\r\n";
    let body = line.repeat(600); // ~600 KB each, 40 of them: ~24 MB
    for i in 0..40 {
        let status = poster
            .post(&article("local.test", &format!("big {i}"), &body))
            .await;
        assert!(status.starts_with("240"), "{status}");
    }

    // The store's side: a prefix whose bytes before its last article stay
    // under the bound, and never nothing.
    let store = a.server().store();
    let every = |_: &[u8], _: usize| true;
    let all = (store.articles_after(0, 4000, i64::MAX, &every).await).expect("log");
    assert_eq!(all.len(), 40);
    let three: i64 = all[..3].iter().map(|x| x.bytes.len() as i64).sum();
    let some = (store.articles_after(0, 4000, three, &every).await).expect("log");
    assert_eq!(some.len(), 3, "the 4th starts at the bound, not below it");
    let some = (store.articles_after(0, 4000, three + 1, &every).await).expect("log");
    assert_eq!(some.len(), 4, "the 4th starts just below the bound");
    assert_eq!(some[0].id, all[0].id);
    let one = (store.articles_after(0, 4000, 1, &every).await).expect("log");
    assert_eq!(one.len(), 1, "at least one article, however large");
    let two = store
        .articles_after(all[5].id, 2, i64::MAX, &every)
        .await
        .expect("log");
    assert_eq!(
        two.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![all[6].id, all[7].id]
    );

    let c = node("c", pc, vec![peer("a", None, "*")], &[]).await;
    wait_for_count(&c, "local.test", 40).await;
    wait_for_accepted(&a, "c", 40).await;
    c.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_peer_that_was_down_gets_its_whole_backlog_once() {
    let (pa, pc) = (free_port(), free_port());
    let a = node("a", pa, vec![peer("c", Some(local(pc)), "*")], &[]).await;
    let mut poster = reader(a.addr).await;
    for i in 0..1000 {
        let status = poster
            .post(&article("local.test", &format!("backlog {i}"), "x\r\n"))
            .await;
        assert!(status.starts_with("240"), "{status}");
    }
    // Restart A too: the backlog is its cursor, which survives.
    let (dir, config) = a.stop().await;
    let a = TestServer::start_in(dir, config).await;
    let c = node("c", pc, vec![peer("a", None, "*")], &[]).await;
    wait_for_count(&c, "local.test", 1000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_for_count(&c, "local.test", 1000).await;
    wait_for_accepted(&a, "c", 1000).await;
    c.stop().await;
    a.stop().await;
}

/// The case as an operator meets it: C is fed, goes down, 1,000
/// articles are posted on A meanwhile (A's feeder backs off, retrying),
/// C comes back on its database: C ends with exactly what A has, each
/// once, and A offered each once (nothing refused as already there).
#[tokio::test]
async fn a_peer_down_for_a_while_gets_the_backlog_built_meanwhile_once() {
    let (pa, pc) = (free_port(), free_port());
    let mut to_c = peer("c", Some(local(pc)), "*");
    to_c.max_backoff_secs = 2;
    let c = node("c", pc, vec![peer("a", None, "*")], &[]).await;
    let a = node("a", pa, vec![to_c], &[]).await;
    let mut poster = reader(a.addr).await;
    let mut ids = vec![posted_id(
        &poster.post(&article("local.test", "before", "x\r\n")).await,
    )];
    wait_for_count(&c, "local.test", 1).await;
    let (c_dir, c_config) = c.stop().await;
    for i in 0..1000 {
        let status = poster
            .post(&article("local.test", &format!("while down {i}"), "x\r\n"))
            .await;
        ids.push(posted_id(&status));
    }
    // Long enough for a few failed connections (backoff 1 s, then 2 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let state = a.server().store().peer_state("c").await.expect("state");
    assert!(
        state.connected_at.is_none() && state.last_error.is_some(),
        "{state:?}"
    );

    let c = TestServer::start_in(c_dir, c_config).await;
    wait_for_count(&c, "local.test", 1001).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_for_count(&c, "local.test", 1001).await;
    let mut r = reader(c.addr).await;
    assert!(r.cmd("GROUP local.test").await.starts_with("211"));
    let (_, heads) = r.cmd_block("HDR Message-ID 1-", "225").await;
    let mut on_c: Vec<String> = heads
        .iter()
        .filter_map(|l| l.split_once(' ').map(|(_, id)| id.to_owned()))
        .collect();
    on_c.sort();
    ids.sort();
    assert!(
        on_c == ids,
        "{} ids on C, {} posted on A",
        on_c.len(),
        ids.len()
    );
    wait_for_accepted(&a, "c", 1001).await;
    let state = a.server().store().peer_state("c").await.expect("state");
    assert_eq!((state.refused, state.rejected), (0, 0), "{state:?}");
    c.stop().await;
    a.stop().await;
}

/// The transit commands' answer codes (RFC 3977 §6.3.2, RFC 4644 §2), raw.
#[tokio::test]
async fn transit_commands_answer_with_the_rfc_codes() {
    let port = free_port();
    let s = node("s", port, vec![peer("p", None, "*")], &[]).await;
    let relayed = |id: &str, path: &str| {
        format!(
            "Path: {path}\r\nFrom: a@example.com\r\nNewsgroups: local.test\r\nSubject: t\r\n\
             Message-ID: {id}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n.\r\n"
        )
    };

    // A peer (from 127.0.0.1) sees transit in CAPABILITIES and may stream.
    let mut p = Client::connect(s.addr).await;
    let (_, caps) = p.cmd_block("CAPABILITIES", "101").await;
    assert!(caps.contains(&"IHAVE".to_owned()) && caps.contains(&"STREAMING".to_owned()));
    assert_eq!(p.cmd("MODE STREAM").await, "203 Streaming permitted");
    assert_eq!(p.cmd("CHECK <t1@x>").await, "238 <t1@x>");
    p.send(format!("TAKETHIS <t1@x>\r\n{}", relayed("<t1@x>", "origin.test")).as_bytes())
        .await;
    assert_eq!(p.line().await, "239 <t1@x>");
    assert_eq!(p.cmd("CHECK <t1@x>").await, "438 <t1@x>");
    // A duplicate TAKETHIS, a malformed one, a looping one: 439, and the
    // stream stays in step.
    p.send(format!("TAKETHIS <t1@x>\r\n{}", relayed("<t1@x>", "origin.test")).as_bytes())
        .await;
    assert!(p.line().await.starts_with("439 <t1@x>"));
    p.send(b"TAKETHIS <t2@x>\r\nSubject: no other headers\r\n\r\nbody\r\n.\r\n")
        .await;
    assert!(p.line().await.starts_with("439 <t2@x>"));
    p.send(
        format!(
            "TAKETHIS <t3@x>\r\n{}",
            relayed("<t3@x>", "other!s.test!origin")
        )
        .as_bytes(),
    )
    .await;
    assert!(p.line().await.starts_with("439 <t3@x>"));
    // Refused ids are remembered: offered again, they are not wanted.
    assert_eq!(p.cmd("CHECK <t2@x>").await, "438 <t2@x>");
    assert_eq!(p.cmd("DATE").await.get(..3), Some("111"));

    // IHAVE: 335 then 235; a known id 435; a bad article 437.
    let mut q = Client::connect(s.addr).await;
    assert!(q.cmd("IHAVE <i1@x>").await.starts_with("335"));
    q.send(relayed("<i1@x>", "origin.test").as_bytes()).await;
    assert!(q.line().await.starts_with("235"));
    assert!(q.cmd("IHAVE <i1@x>").await.starts_with("435"));
    assert!(q.cmd("IHAVE <i2@x>").await.starts_with("335"));
    q.send(relayed("<other@x>", "origin.test").as_bytes()).await;
    assert!(q.line().await.starts_with("437"));
    // In flight on another connection: CHECK 431, IHAVE 436.
    assert!(q.cmd("IHAVE <i3@x>").await.starts_with("335"));
    assert_eq!(p.cmd("CHECK <i3@x>").await, "431 <i3@x>");
    let mut r = Client::connect(s.addr).await;
    assert!(r.cmd("IHAVE <i3@x>").await.starts_with("436"));
    q.send(relayed("<i3@x>", "origin.test").as_bytes()).await;
    assert!(q.line().await.starts_with("235"));
    assert_eq!(p.cmd("CHECK <i3@x>").await, "438 <i3@x>");

    // The stored article carries our identity first in Path.
    let lines = head_of(&mut q, "<i1@x>").await;
    assert_eq!(header(&lines, "Path"), "s.test!origin.test");

    // Not a peer: 502 for every transit command; TAKETHIS's article is
    // still read so the session stays in step.
    let mut reader = reader(s.addr).await;
    let (_, caps) = reader.cmd_block("CAPABILITIES", "101").await;
    assert!(!caps.contains(&"IHAVE".to_owned()));
    assert!(reader.cmd("MODE STREAM").await.starts_with("502"));
    assert!(reader.cmd("CHECK <n@x>").await.starts_with("502"));
    assert!(reader.cmd("IHAVE <n@x>").await.starts_with("502"));
    reader
        .send(format!("TAKETHIS <n@x>\r\n{}", relayed("<n@x>", "origin.test")).as_bytes())
        .await;
    assert!(reader.line().await.starts_with("502"));
    assert!(reader.cmd("DATE").await.starts_with("111"));
    assert!(reader.cmd("STAT <n@x>").await.starts_with("430"));
    s.stop().await;
}

/// A message-id is in flight from the TAKETHIS that brings it: while its
/// article is still arriving on one connection, another connection is
/// told 431 (later) to CHECK it, not to send it too, and 439 to a TAKETHIS
/// of it; once it is stored, 438.
#[tokio::test]
async fn an_article_still_arriving_by_takethis_is_in_flight_for_other_connections() {
    let s = node("s", free_port(), vec![peer("p", None, "*")], &[]).await;
    let text = "Path: origin.test\r\nFrom: a@example.com\r\nNewsgroups: local.test\r\n\
                Subject: slow\r\nMessage-ID: <slow@x>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
                \r\nfirst half\r\nsecond half\r\n.\r\n";
    let (first, rest) = text.split_at(text.find("second").expect("split"));
    let mut a = Client::connect(s.addr).await;
    assert_eq!(a.cmd("MODE STREAM").await, "203 Streaming permitted");
    a.send(format!("TAKETHIS <slow@x>\r\n{first}").as_bytes())
        .await;

    let mut b = Client::connect(s.addr).await;
    assert_eq!(b.cmd("MODE STREAM").await, "203 Streaming permitted");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = b.cmd("CHECK <slow@x>").await;
        if answer == "431 <slow@x>" {
            break;
        }
        assert_eq!(answer, "238 <slow@x>");
        assert!(Instant::now() < deadline, "never in flight while arriving");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.send(format!("TAKETHIS <slow@x>\r\n{text}").as_bytes())
        .await;
    let refused = b.line().await;
    assert!(refused.starts_with("439 <slow@x>"), "{refused}");

    a.send(rest.as_bytes()).await;
    assert_eq!(a.line().await, "239 <slow@x>");
    assert_eq!(b.cmd("CHECK <slow@x>").await, "438 <slow@x>");
    wait_for_count(&s, "local.test", 1).await;
    s.stop().await;
}

/// What a peer may get wrong in a transit command or its article, over
/// the wire: a missing or malformed message-id (501), an article over
/// `limits.max_article_size` (437 / 439, the stream in step after it), an
/// article only in groups this server does not carry (437 / 439). The
/// refused ids are remembered: offered again, they are not wanted.
#[tokio::test]
async fn bad_offers_and_unwanted_articles_get_the_rfc_codes() {
    let s = TestServer::start_with(|c| {
        c.server.path_identity = "s.test".to_owned().try_into().expect("identity");
        c.peers = vec![peer("p", None, "*")];
        c.limits.max_article_size = 4096;
    })
    .await;
    let relayed = |id: &str, groups: &str, body: &str| {
        format!(
            "Path: origin.test\r\nFrom: a@example.com\r\nNewsgroups: {groups}\r\n\
             Subject: t\r\nMessage-ID: {id}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
             \r\n{body}.\r\n"
        )
    };
    let big = format!("{}\r\n", "x".repeat(60)).repeat(100);
    let mut p = Client::connect(s.addr).await;
    for line in [
        "IHAVE",
        "IHAVE not-an-id",
        "IHAVE <>",
        "CHECK",
        "CHECK <a b@x>",
    ] {
        assert!(p.cmd(line).await.starts_with("501"), "{line}");
    }
    // Over the size limit: IHAVE 437, TAKETHIS 439 and the next command
    // answered in step.
    assert!(p.cmd("IHAVE <big1@x>").await.starts_with("335"));
    p.send(relayed("<big1@x>", "local.test", &big).as_bytes())
        .await;
    let refused = p.line().await;
    assert!(
        refused.starts_with("437") && refused.contains("too large"),
        "{refused}"
    );
    assert_eq!(p.cmd("MODE STREAM").await, "203 Streaming permitted");
    p.send(
        format!(
            "TAKETHIS <big2@x>\r\n{}DATE\r\n",
            relayed("<big2@x>", "local.test", &big)
        )
        .as_bytes(),
    )
    .await;
    let refused = p.line().await;
    assert!(
        refused.starts_with("439 <big2@x>") && refused.contains("too large"),
        "{refused}"
    );
    assert!(
        p.line().await.starts_with("111"),
        "in step after the article"
    );
    // Only in groups not carried here.
    assert!(p.cmd("IHAVE <far1@x>").await.starts_with("335"));
    p.send(relayed("<far1@x>", "alt.elsewhere", "hi\r\n").as_bytes())
        .await;
    let refused = p.line().await;
    assert!(refused.starts_with("437"), "{refused}");
    p.send(
        format!(
            "TAKETHIS <far2@x>\r\n{}",
            relayed("<far2@x>", "alt.elsewhere", "hi\r\n")
        )
        .as_bytes(),
    )
    .await;
    let refused = p.line().await;
    assert!(refused.starts_with("439 <far2@x>"), "{refused}");
    for id in ["<big1@x>", "<big2@x>", "<far1@x>", "<far2@x>"] {
        assert_eq!(p.cmd(&format!("CHECK {id}")).await, format!("438 {id}"));
    }
    // A good article still goes through on the same connection.
    p.send(
        format!(
            "TAKETHIS <ok@x>\r\n{}",
            relayed("<ok@x>", "local.test", "hi\r\n")
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(p.line().await, "239 <ok@x>");
    s.stop().await;
}

/// A refusal that depends on the peer that sent the article (its `accept`
/// patterns, or an offered message-id that is not the article's) refuses
/// that copy only: the id is not remembered as refused, and another peer
/// offering it gets it taken. A refusal any copy would get is remembered.
#[tokio::test]
async fn a_refusal_that_depends_on_the_peer_does_not_keep_the_article_from_others() {
    let narrow = tidings::config::Config::parse(
        "[[peer]]\nname = \"narrow\"\npath_identity = \"narrow.test\"\n\
         accept_from = [\"127.0.0.3\"]\naccept = \"comp.*\"\n",
    )
    .expect("peer")
    .peers
    .remove(0);
    let wide = peer("wide", None, "*");
    let s = node(
        "s",
        free_port(),
        vec![narrow, wide],
        &["comp.lang", "alt.misc"],
    )
    .await;
    let relayed = |id: &str, groups: &str| {
        format!(
            "Path: origin.test\r\nFrom: a@example.com\r\nNewsgroups: {groups}\r\n\
             Subject: t\r\nMessage-ID: {id}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
             \r\nbody\r\n.\r\n"
        )
    };

    // The narrow peer: what it may not send us is refused, 439 / 437.
    let mut n = Client::connect_from("127.0.0.3", s.addr).await;
    assert_eq!(n.cmd("MODE STREAM").await, "203 Streaming permitted");
    n.send(format!("TAKETHIS <a1@x>\r\n{}", relayed("<a1@x>", "alt.misc")).as_bytes())
        .await;
    let refused = n.line().await;
    assert!(refused.starts_with("439 <a1@x>"), "{refused}");
    assert!(refused.contains("no newsgroups accepted"), "{refused}");
    assert!(n.cmd("IHAVE <a2@x>").await.starts_with("335"));
    n.send(relayed("<a2@x>", "alt.misc").as_bytes()).await;
    assert!(n.line().await.starts_with("437"));
    // An article under another id than the one offered.
    assert!(n.cmd("IHAVE <m1@x>").await.starts_with("335"));
    n.send(relayed("<m2@x>", "comp.lang").as_bytes()).await;
    assert!(n.line().await.starts_with("437"));
    // What it may send is taken; a malformed article is refused for all.
    n.send(format!("TAKETHIS <c1@x>\r\n{}", relayed("<c1@x>", "comp.lang")).as_bytes())
        .await;
    assert_eq!(n.line().await, "239 <c1@x>");
    n.send(b"TAKETHIS <bad@x>\r\nSubject: no other headers\r\n\r\nbody\r\n.\r\n")
        .await;
    assert!(n.line().await.starts_with("439 <bad@x>"));

    // The wide peer: the articles the narrow one could not send are
    // wanted and taken, the offered-but-not-sent id too; the malformed
    // one's id and the stored one are not wanted.
    let mut w = Client::connect(s.addr).await;
    assert_eq!(w.cmd("MODE STREAM").await, "203 Streaming permitted");
    for id in ["<a1@x>", "<a2@x>", "<m1@x>"] {
        assert_eq!(w.cmd(&format!("CHECK {id}")).await, format!("238 {id}"));
    }
    assert_eq!(w.cmd("CHECK <c1@x>").await, "438 <c1@x>");
    assert_eq!(w.cmd("CHECK <bad@x>").await, "438 <bad@x>");
    w.send(format!("TAKETHIS <a1@x>\r\n{}", relayed("<a1@x>", "alt.misc")).as_bytes())
        .await;
    assert_eq!(w.line().await, "239 <a1@x>");
    assert!(w.cmd("IHAVE <a2@x>").await.starts_with("335"));
    w.send(relayed("<a2@x>", "alt.misc").as_bytes()).await;
    assert!(w.line().await.starts_with("235"));
    wait_for_count(&s, "alt.misc", 2).await;
    wait_for_count(&s, "comp.lang", 1).await;
    s.stop().await;
}

/// Lock-step IHAVE peers and a poster get every answer whether the writer
/// and a lone waiting session poll before sleeping (`storage.spin_micros`)
/// or sleep at once, and with a spin far longer than a commit: a session
/// polls only while it alone waits, and stops as soon as its answer is in.
#[tokio::test]
async fn lock_step_peers_and_posters_are_answered_with_and_without_polling() {
    for spin in [0, 400, 50_000] {
        let port = free_port();
        let s = TestServer::start_with(move |c| {
            c.server.listen = vec![local(port)];
            c.server.path_identity = "s.test".to_owned().try_into().expect("identity");
            c.peers = vec![peer("p", None, "*")];
            c.storage.spin_micros = spin;
        })
        .await;
        let feed = |tag: &'static str| async move {
            let mut q = Client::connect(local(port)).await;
            for i in 0..40 {
                let id = format!("<{tag}{i}.{spin}@x>");
                let offer = q.cmd(&format!("IHAVE {id}")).await;
                assert!(offer.starts_with("335"), "{offer}");
                q.send(
                    format!(
                        "Path: origin.test\r\nFrom: a@example.com\r\nNewsgroups: local.test\r\n\
                         Subject: {tag} {i}\r\nMessage-ID: {id}\r\n\
                         Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n.\r\n"
                    )
                    .as_bytes(),
                )
                .await;
                let answer = q.line().await;
                assert!(answer.starts_with("235"), "spin {spin}: {answer}");
            }
        };
        let post = async {
            let mut poster = reader(local(port)).await;
            for i in 0..20 {
                let status = poster
                    .post(&article("local.test", &format!("post {i}"), "x\r\n"))
                    .await;
                assert!(status.starts_with("240"), "spin {spin}: {status}");
            }
        };
        // One peer alone first (the polling path), then two peers and a
        // poster at once (some wait together, so they sleep).
        feed("alone").await;
        tokio::join!(feed("a"), feed("b"), post);
        wait_for_count(&s, "local.test", 140).await;
        s.stop().await;
    }
}
