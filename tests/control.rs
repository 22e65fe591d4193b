//! newgroup and rmgroup control messages (RFC 5537 §5.2, §5.3), carried
//! out once stored as the `[[control]]` rules say (INN's control.ctl): a
//! group created or removed by one message reaches every server of the
//! network that trusts its sender. Real servers on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestServer, free_port, local, node, peer, posted_id, reader};
use tidings::config::Config;

/// The rules of these tests: the group admin of example.com may create
/// and remove corp.* groups; anything else is only logged.
const RULES: &str = r#"
[[control]]
messages = ["newgroup", "rmgroup"]
from = "admin@example.com"
groups = "corp.*"
action = "doit"

[[control]]
messages = ["all"]
from = "*"
action = "log"
"#;

fn rules() -> Vec<tidings::config::ControlRule> {
    Config::parse(RULES).expect("rules").control
}

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.control = rules();
        c.peers = vec![peer("p", None, "*")];
    })
    .await
}

/// A group control message as a peer relays it.
fn relayed(id: &str, from: &str, control: &str, extra: &str, body: &str) -> String {
    let group = control.split_whitespace().nth(1).unwrap_or("corp.misc");
    format!(
        "Path: hub.test!not-for-mail\r\nFrom: {from}\r\nNewsgroups: {group}\r\n\
         Subject: cmsg {control}\r\nMessage-ID: {id}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
         Control: {control}\r\n{extra}\r\n{body}"
    )
}

const APPROVED: &str = "Approved: admin@example.com\r\n";

async fn take(p: &mut Client, id: &str, text: &str) {
    p.send(format!("TAKETHIS {id}\r\n{text}.\r\n").as_bytes())
        .await;
    let answer = p.line().await;
    assert!(answer.starts_with("239 "), "{id}: {answer}");
}

/// The LIST ACTIVE line of `group`, if it exists.
async fn active(c: &mut Client, group: &str) -> Option<String> {
    let (_, lines) = c.cmd_block(&format!("LIST ACTIVE {group}"), "215").await;
    lines.into_iter().next()
}

/// Waits until `group` exists (or, with `exists` false, is gone).
async fn wait_for(c: &mut Client, group: &str, exists: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while active(c, group).await.is_some() != exists {
        assert!(
            Instant::now() < deadline,
            "{group} {} in time",
            if exists { "not created" } else { "not removed" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn newgroup_and_rmgroup_do_what_the_rules_say() {
    let s = server().await;
    let mut p = Client::connect(s.addr).await;
    assert!(p.cmd("MODE STREAM").await.starts_with("203 "));
    let mut c = reader(s.addr).await;
    // Not carried out: a stranger's, an unapproved one, a group the rule
    // does not name, a checkgroups. Then the admin's, read after them: once
    // it is done, so are they.
    let refused = [
        (
            "<n1@hub.test>",
            "mallory@example.com",
            "newgroup corp.forged",
            APPROVED,
        ),
        (
            "<n2@hub.test>",
            "admin@example.com",
            "newgroup corp.unapproved",
            "",
        ),
        (
            "<n3@hub.test>",
            "admin@example.com",
            "newgroup other.group",
            APPROVED,
        ),
        (
            "<n4@hub.test>",
            "admin@example.com",
            "checkgroups",
            APPROVED,
        ),
    ];
    for (id, from, control, extra) in refused {
        take(&mut p, id, &relayed(id, from, control, extra, "x\r\n")).await;
    }
    let body = "New group.\r\n\r\nFor your newsgroups file:\r\ncorp.news\tCompany news\r\n";
    take(
        &mut p,
        "<n5@hub.test>",
        &relayed(
            "<n5@hub.test>",
            "Group Admin <Admin@Example.com>",
            "newgroup corp.news",
            APPROVED,
            body,
        ),
    )
    .await;
    wait_for(&mut c, "corp.news", true).await;
    assert_eq!(
        active(&mut c, "corp.news").await.as_deref(),
        Some("corp.news 0 1 y")
    );
    let (_, desc) = c.cmd_block("LIST NEWSGROUPS corp.news", "215").await;
    assert_eq!(desc, ["corp.news\tCompany news"]);
    for group in ["corp.forged", "corp.unapproved", "other.group"] {
        assert_eq!(active(&mut c, group).await, None, "{group}");
    }
    // Every one of them was stored in control, and would flood on.
    let (status, _) = c.cmd_block("LISTGROUP control", "211").await;
    assert!(status.starts_with("211 5 1 5 "), "{status}");

    // The new group takes posts at once; a moderated newgroup; rmgroup.
    let mut poster = reader(s.addr).await;
    posted_id(
        &poster
            .post(&common::article("corp.news", "first", "hello\r\n"))
            .await,
    );
    take(
        &mut p,
        "<n6@hub.test>",
        &relayed(
            "<n6@hub.test>",
            "admin@example.com",
            "newgroup corp.board moderated",
            APPROVED,
            "",
        ),
    )
    .await;
    wait_for(&mut c, "corp.board", true).await;
    assert_eq!(
        active(&mut c, "corp.board").await.as_deref(),
        Some("corp.board 0 1 m")
    );
    take(
        &mut p,
        "<n7@hub.test>",
        &relayed(
            "<n7@hub.test>",
            "admin@example.com",
            "rmgroup corp.news",
            APPROVED,
            "",
        ),
    )
    .await;
    wait_for(&mut c, "corp.news", false).await;
    assert!(c.cmd("GROUP corp.news").await.starts_with("411 "));
    s.stop().await;
}

/// Feeds `s` the admin's newgroup for `group` as a peer, and waits until
/// the group exists; a reader's connection.
async fn admin_newgroup(s: &TestServer, id: &str, group: &str) -> Client {
    let mut p = Client::connect(s.addr).await;
    assert!(p.cmd("MODE STREAM").await.starts_with("203 "));
    let control = format!("newgroup {group}");
    let text = relayed(id, "admin@example.com", &control, APPROVED, "");
    take(&mut p, id, &text).await;
    let mut c = reader(s.addr).await;
    wait_for(&mut c, group, true).await;
    c
}

#[tokio::test]
async fn each_message_is_carried_out_once_across_restarts() {
    let s = server().await;
    admin_newgroup(&s, "<o1@hub.test>", "corp.once").await;
    // The operator removes it by hand; a restart must not bring it back.
    s.server()
        .store()
        .remove_group("corp.once", 0)
        .await
        .expect("remove");
    let (dir, config) = s.stop().await;
    let s = TestServer::start_in(dir, config).await;
    let mut c = admin_newgroup(&s, "<o2@hub.test>", "corp.twice").await;
    assert_eq!(active(&mut c, "corp.once").await, None);
    s.stop().await;
}

#[tokio::test]
async fn a_newgroup_posted_on_a_creates_the_group_on_a_and_b() {
    let (pa, pb) = (free_port(), free_port());
    let mut b = node("b", pb, vec![peer("a", None, "*")], &[]).await;
    let mut config = b.config.clone();
    config.control = rules();
    b.server_mut().reload(config);
    let mut a = node("a", pa, vec![peer("b", Some(local(pb)), "*")], &[]).await;
    let mut config = a.config.clone();
    config.control = rules();
    a.server_mut().reload(config);

    // Posted by the admin to the group it creates, which does not exist
    // yet: filed in control, so that is no reason to refuse it.
    let mut admin = reader(a.addr).await;
    let id = posted_id(
        &admin
            .post(
                "From: admin@example.com\r\nNewsgroups: corp.everywhere\r\n\
                 Subject: cmsg newgroup corp.everywhere\r\nControl: newgroup corp.everywhere\r\n\
                 Approved: admin@example.com\r\n\r\nFor your newsgroups file:\r\n\
                 corp.everywhere\tOn every server\r\n",
            )
            .await,
    );
    for (name, server) in [("a", &a), ("b", &b)] {
        let mut c = reader(server.addr).await;
        wait_for(&mut c, "corp.everywhere", true).await;
        let (_, desc) = c.cmd_block("LIST NEWSGROUPS corp.everywhere", "215").await;
        assert_eq!(desc, ["corp.everywhere\tOn every server"], "on {name}");
    }
    let mut c = reader(b.addr).await;
    assert!(c.cmd(&format!("STAT {id}")).await.starts_with("223 "));
    // An ordinary post to a group that does not exist is still refused.
    let refused = admin
        .post(&common::article("corp.nowhere", "x", "y\r\n"))
        .await;
    assert!(refused.starts_with("441 "), "{refused}");
    for s in [a, b] {
        s.stop().await;
    }
}
