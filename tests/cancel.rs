//! Cancels and supersedes (RFC 5537 §5.3, §5.4) with Cancel-Lock (RFC
//! 8315): an article is withdrawn by a cancel its author sent, on this
//! server and on every server the cancel floods to, and by nobody else;
//! `cancels.process` is INN's docancels. Real servers on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{
    Client, TestServer, admin_config, article, free_port, local, node, peer, posted_id, reader,
    tidings,
};
use tidings::article::cancel_lock::{cancel_key, cancel_lock};
use tidings::config::{CancelPolicy, Config};

/// A server with readers alice and bob, a peer "p" that may feed it from
/// 127.0.0.1, and `process` as its cancel policy.
async fn server(process: CancelPolicy) -> TestServer {
    let s = TestServer::start_with(|c| {
        c.cancels.process = process;
        c.peers = vec![peer("p", None, "*")];
    })
    .await;
    s.add_user("alice", "alice-pw").await;
    s.add_user("bob", "bob-pw").await;
    s
}

/// A reader's connection (from 127.0.0.2, no peer), logged in as `user`.
async fn login(server: &TestServer, user: &str) -> Client {
    let mut c = reader(server.addr).await;
    assert!(
        c.cmd(&format!("AUTHINFO USER {user}"))
            .await
            .starts_with("381 ")
    );
    let pass = c.cmd(&format!("AUTHINFO PASS {user}-pw")).await;
    assert!(pass.starts_with("281 "), "{pass}");
    c
}

fn cancel_of(target: &str, group: &str) -> String {
    format!(
        "From: Tester <tester@example.com>\r\nNewsgroups: {group}\r\n\
         Subject: cmsg cancel {target}\r\nControl: cancel {target}\r\n\r\ncancelled\r\n"
    )
}

/// The `count low high` of GROUP.
async fn group(c: &mut Client, name: &str) -> String {
    let status = c.cmd(&format!("GROUP {name}")).await;
    assert!(status.starts_with("211 "), "{status}");
    let mut words = status.split(' ').skip(1);
    let (n, low, high) = (words.next(), words.next(), words.next());
    format!(
        "{} {} {}",
        n.unwrap_or(""),
        low.unwrap_or(""),
        high.unwrap_or("")
    )
}

/// Waits until STAT `id` answers `code` on `c`; `what` says what did not
/// happen in time.
async fn wait_stat(c: &mut Client, id: &str, code: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while stat(c, id).await != code {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stat(c: &mut Client, id: &str) -> String {
    let status = c.cmd(&format!("STAT {id}")).await;
    status.split(' ').next().unwrap_or("").to_owned()
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}: ");
    lines.iter().find_map(|l| l.strip_prefix(prefix.as_str()))
}

#[tokio::test]
async fn an_author_cancels_their_post_and_nobody_else_can() {
    let s = server(CancelPolicy::RequireAuth).await;
    let mut alice = login(&s, "alice").await;
    let id = posted_id(
        &alice
            .post(&article("local.test", "mine", "hello\r\n"))
            .await,
    );
    let other = posted_id(
        &alice
            .post(&article("local.test", "also mine", "hi\r\n"))
            .await,
    );

    // Her post carries our lock: SHA-1 and SHA-256 elements.
    let (_, head) = alice.cmd_block(&format!("HEAD {id}"), "221").await;
    let lock = header(&head, "Cancel-Lock").expect("Cancel-Lock on a logged-in post");
    assert!(
        lock.starts_with("sha1:") && lock.contains(" sha256:"),
        "{lock}"
    );

    // Bob's cancel is stored, filed in control.cancel, and does nothing:
    // the key we give him opens his own locks only.
    let mut bob = login(&s, "bob").await;
    let bobs = posted_id(&bob.post(&cancel_of(&id, "local.test")).await);
    assert_eq!(stat(&mut bob, &id).await, "223");
    assert_eq!(group(&mut bob, "local.test").await, "2 1 2");
    assert_eq!(group(&mut bob, "control.cancel").await, "1 1 1");
    let (_, head) = bob.cmd_block(&format!("HEAD {bobs}"), "221").await;
    assert!(header(&head, "Cancel-Key").is_some_and(|k| k.starts_with("sha1:")));
    assert!(
        header(&head, "Xref").is_some_and(|x| x.ends_with(" control.cancel:1")),
        "a cancel is filed in control.cancel, not in its newsgroups: {head:?}"
    );

    // A reader who has not logged in gets no key from us: nothing happens.
    let mut anon = reader(s.addr).await;
    posted_id(&anon.post(&cancel_of(&id, "local.test")).await);
    assert_eq!(stat(&mut anon, &id).await, "223");

    // Hers withdraws it: gone by message-id and by number, the group's
    // count and low-water mark moved on, the other article untouched.
    posted_id(&alice.post(&cancel_of(&id, "local.test")).await);
    assert_eq!(stat(&mut alice, &id).await, "430");
    assert_eq!(group(&mut alice, "local.test").await, "1 2 2");
    assert_eq!(alice.cmd("STAT 1").await.split(' ').next(), Some("423"));
    assert_eq!(stat(&mut alice, &other).await, "223");
    let (_, numbers) = alice.cmd_block("LISTGROUP local.test", "211").await;
    assert_eq!(numbers, ["2"]);
    assert_eq!(group(&mut alice, "control.cancel").await, "3 1 3");

    // Peers cannot feed it back: it is remembered.
    let mut p = Client::connect(s.addr).await;
    assert!(p.cmd(&format!("IHAVE {id}")).await.starts_with("435 "));
    assert!(p.cmd(&format!("CHECK {id}")).await.starts_with("438 "));
    s.stop().await;
}

#[tokio::test]
async fn a_superseding_article_replaces_its_authors_old_one() {
    let s = server(CancelPolicy::RequireAuth).await;
    let mut alice = login(&s, "alice").await;
    let old = posted_id(&alice.post(&article("local.test", "draft", "v1\r\n")).await);
    let mut bob = login(&s, "bob").await;
    let forged = format!(
        "From: b@example.com\r\nNewsgroups: local.test\r\nSubject: draft\r\n\
         Supersedes: {old}\r\n\r\nnot hers\r\n"
    );
    posted_id(&bob.post(&forged).await);
    assert_eq!(stat(&mut bob, &old).await, "223");

    let new = format!(
        "From: a@example.com\r\nNewsgroups: local.test\r\nSubject: draft\r\n\
         Supersedes: {old}\r\n\r\nv2\r\n"
    );
    let new = posted_id(&alice.post(&new).await);
    assert_eq!(stat(&mut alice, &old).await, "430");
    assert_eq!(stat(&mut alice, &new).await, "223");
    // The superseding article is an ordinary one: in its group, not in
    // control.cancel. Bob's stays too.
    assert_eq!(group(&mut alice, "local.test").await, "2 2 3");
    assert_eq!(group(&mut alice, "control.cancel").await, "0 1 0");
    s.stop().await;
}

/// An article as a peer relays it, with `extra` header lines.
fn relayed(id: &str, extra: &str) -> String {
    format!(
        "Path: origin.test!not-for-mail\r\nFrom: a@example.com\r\nNewsgroups: local.test\r\n\
         Subject: t {id}\r\nMessage-ID: {id}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n{extra}\
         \r\nbody\r\n"
    )
}

fn relayed_cancel(id: &str, target: &str, extra: &str) -> String {
    relayed(id, &format!("Control: cancel {target}\r\n{extra}"))
}

/// Sends `articles` as one TAKETHIS burst and reads every answer.
async fn take(p: &mut Client, articles: &[(&str, String)]) -> Vec<String> {
    let mut burst = String::new();
    for (id, text) in articles {
        burst.push_str(&format!(
            "TAKETHIS {id}\r\n{}.\r\n",
            text.replace("\r\n.", "\r\n..")
        ));
    }
    p.send(burst.as_bytes()).await;
    let mut answers = Vec::new();
    for _ in articles {
        answers.push(p.line().await);
    }
    answers
}

/// Sends `articles` as one burst; each must be taken (239).
async fn take_all(p: &mut Client, articles: &[(&str, String)]) {
    let answers = take(p, articles).await;
    assert!(answers.iter().all(|a| a.starts_with("239 ")), "{answers:?}");
}

/// Cancels without a key, as (message-id, article), from (id, target).
fn cancels<'a>(pairs: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    (pairs.iter())
        .map(|&(id, target)| (id, relayed_cancel(id, target, "")))
        .collect()
}

#[tokio::test]
async fn relayed_cancels_are_checked_against_the_lock_even_in_one_burst() {
    let s = server(CancelPolicy::RequireAuth).await;
    let mut p = Client::connect(s.addr).await;
    assert!(p.cmd("MODE STREAM").await.starts_with("203 "));
    // Another server's user, with that server's secret.
    let lock = cancel_lock(b"their secret", "carol", "<t1@origin.test>");
    let key = cancel_key(b"their secret", "carol", "<t1@origin.test>");
    let wrong = cancel_key(b"their secret", "mallory", "<t1@origin.test>");
    // The cancels come first in the burst: the writer carries them out
    // after the batch's articles are in, so order within it is no matter.
    let answers = take(
        &mut p,
        &[
            (
                "<c-bad@origin.test>",
                relayed_cancel(
                    "<c-bad@origin.test>",
                    "<t1@origin.test>",
                    &format!("Cancel-Key: {wrong}\r\n"),
                ),
            ),
            (
                "<t1@origin.test>",
                relayed("<t1@origin.test>", &format!("Cancel-Lock: {lock}\r\n")),
            ),
            ("<t2@origin.test>", relayed("<t2@origin.test>", "")),
            (
                "<c-t2@origin.test>",
                relayed_cancel("<c-t2@origin.test>", "<t2@origin.test>", ""),
            ),
        ],
    )
    .await;
    assert!(answers.iter().all(|a| a.starts_with("239 ")), "{answers:?}");
    let mut c = reader(s.addr).await;
    // A wrong key opens nothing; an article without a lock cannot be
    // cancelled under require-auth.
    assert_eq!(stat(&mut c, "<t1@origin.test>").await, "223");
    assert_eq!(stat(&mut c, "<t2@origin.test>").await, "223");

    let answers = take(
        &mut p,
        &[(
            "<c-good@origin.test>",
            relayed_cancel(
                "<c-good@origin.test>",
                "<t1@origin.test>",
                &format!("Cancel-Key: sha512:nonsense {key}\r\n"),
            ),
        )],
    )
    .await;
    assert!(answers[0].starts_with("239 "), "{answers:?}");
    assert_eq!(stat(&mut c, "<t1@origin.test>").await, "430");
    assert_eq!(group(&mut c, "local.test").await, "1 2 2");
    // Every cancel is kept and would flood on.
    assert_eq!(group(&mut c, "control.cancel").await, "3 1 3");
    let answers = take(
        &mut p,
        &[("<t1@origin.test>", relayed("<t1@origin.test>", ""))],
    )
    .await;
    assert!(answers[0].starts_with("439 "), "{answers:?}");
    s.stop().await;
}

#[tokio::test]
async fn each_policy_does_what_inns_docancels_does() {
    let mut s = server(CancelPolicy::None).await;
    let mut p = Client::connect(s.addr).await;
    assert!(p.cmd("MODE STREAM").await.starts_with("203 "));
    let lock = cancel_lock(b"their secret", "carol", "<locked@o.test>");
    let mut burst = vec![
        ("<plain@o.test>", relayed("<plain@o.test>", "")),
        (
            "<locked@o.test>",
            relayed("<locked@o.test>", &format!("Cancel-Lock: {lock}\r\n")),
        ),
    ];
    burst.extend(cancels(&[("<c1@o.test>", "<plain@o.test>")]));
    take_all(&mut p, &burst).await;
    let mut c = reader(s.addr).await;
    // none: nothing is withdrawn.
    assert_eq!(stat(&mut c, "<plain@o.test>").await, "223");

    // auth (by a reload): an article without a lock goes by any cancel;
    // one with a lock stays without its key.
    let reload = |s: &mut TestServer, process| {
        let mut config: Config = s.config.clone();
        config.cancels.process = process;
        s.server_mut().reload(config);
    };
    reload(&mut s, CancelPolicy::Auth);
    let burst = [
        ("<c2@o.test>", "<plain@o.test>"),
        ("<c3@o.test>", "<locked@o.test>"),
    ];
    take_all(&mut p, &cancels(&burst)).await;
    assert_eq!(stat(&mut c, "<plain@o.test>").await, "430");
    assert_eq!(stat(&mut c, "<locked@o.test>").await, "223");

    // all: even a forged cancel withdraws, and one that comes before its
    // article has the article refused when it comes.
    reload(&mut s, CancelPolicy::All);
    let burst = [
        ("<c4@o.test>", "<locked@o.test>"),
        ("<c5@o.test>", "<early@o.test>"),
    ];
    take_all(&mut p, &cancels(&burst)).await;
    assert_eq!(stat(&mut c, "<locked@o.test>").await, "430");
    assert!(p.cmd("CHECK <early@o.test>").await.starts_with("438 "));
    let answers = take(&mut p, &[("<early@o.test>", relayed("<early@o.test>", ""))]).await;
    assert!(answers[0].starts_with("439 "), "{answers:?}");
    assert_eq!(group(&mut c, "local.test").await, "0 3 2");
    assert_eq!(group(&mut c, "control.cancel").await, "5 1 5");
    s.stop().await;
}

#[tokio::test]
async fn a_cancel_posted_on_a_withdraws_the_article_on_b_and_c() {
    // A -> B -> C, each checking Cancel-Locks (the default).
    let (a, b, c) = common::chain().await;
    a.add_user("alice", "alice-pw").await;
    let mut alice = login(&a, "alice").await;
    let id = posted_id(
        &alice
            .post(&article("local.test", "oops", "sent too soon\r\n"))
            .await,
    );
    let mut on_c = reader(c.addr).await;
    wait_stat(&mut on_c, &id, "223", "the article never reached C").await;
    let cancel = posted_id(&alice.post(&cancel_of(&id, "local.test")).await);
    let mut on_b = reader(b.addr).await;
    wait_stat(&mut on_c, &cancel, "223", "the cancel never reached C").await;
    for (name, conn) in [("a", &mut alice), ("b", &mut on_b), ("c", &mut on_c)] {
        assert_eq!(stat(conn, &id).await, "430", "still on {name}");
        assert_eq!(group(conn, "local.test").await, "0 2 1", "on {name}");
        assert_eq!(group(conn, "control.cancel").await, "1 1 1", "on {name}");
    }
    let (_, head) = on_c.cmd_block(&format!("HEAD {cancel}"), "221").await;
    let path = header(&head, "Path").expect("Path");
    assert!(path.starts_with("c.test!b.test!a.test!"), "{path}");
    for s in [a, b, c] {
        s.stop().await;
    }
}

#[tokio::test]
async fn an_operator_removes_an_article_beside_the_running_server() {
    let s = server(CancelPolicy::RequireAuth).await;
    let mut c = reader(s.addr).await;
    let id = posted_id(
        &c.post(&article("local.test,local.general", "spam", "buy\r\n"))
            .await,
    );
    let kept = posted_id(&c.post(&article("local.test", "ham", "hello\r\n")).await);
    let config = admin_config(&s, "");

    let run = tidings(&config, &["article", "remove", &id, "--json"]).await;
    assert!(run.ok, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["removed"], id.as_str());
    assert!(v["bytes"].as_u64().is_some_and(|b| b > 0), "{v}");
    // Gone from both groups it was cross-posted to, and remembered.
    assert_eq!(stat(&mut c, &id).await, "430");
    assert_eq!(group(&mut c, "local.test").await, "1 2 2");
    assert_eq!(group(&mut c, "local.general").await, "0 2 1");
    assert_eq!(stat(&mut c, &kept).await, "223");
    let mut p = Client::connect(s.addr).await;
    assert!(p.cmd(&format!("IHAVE {id}")).await.starts_with("435 "));

    // Asked again, the CLI says what became of it.
    for verb in ["remove", "show"] {
        let run = tidings(&config, &["article", verb, &id]).await;
        assert!(!run.ok);
        assert!(
            run.stderr.contains(&format!(
                "no article {id}: cancelled; its message-id is remembered until 20"
            )),
            "{verb}: {}",
            run.stderr
        );
    }
    let run = tidings(&config, &["article", "show", "<never@example.com>"]).await;
    assert!(
        run.stderr.contains("never seen here, or forgotten since"),
        "{}",
        run.stderr
    );
    let run = tidings(&config, &["article", "remove", "not-an-id"]).await;
    assert!(!run.ok && !run.stderr.is_empty());

    // The server goes on numbering after the removed article.
    let next = c.post(&article("local.test", "after", "x\r\n")).await;
    posted_id(&next);
    assert_eq!(group(&mut c, "local.test").await, "2 2 3");
    s.stop().await;
}

#[tokio::test]
async fn a_newsreader_locks_its_post_with_the_message_id_offered_at_post() {
    // tin's way: it takes the message-id offered in POST's 340 answer (as
    // INN words it), writes a Cancel-Lock from its own secret, and later
    // cancels with the key. No login needed.
    let s = server(CancelPolicy::RequireAuth).await;
    let mut c = reader(s.addr).await;
    let status = c.cmd("POST").await;
    assert!(
        status.starts_with("340 Ok, recommended Message-ID <"),
        "{status}"
    );
    let id = status.rsplit(' ').next().expect("id").to_owned();
    assert!(id.ends_with("@tidings.local>"), "{id}");
    let lock = cancel_lock(b"tin's own secret", "", &id);
    let text = format!(
        "From: a@example.com\r\nNewsgroups: local.test\r\nSubject: mine\r\n\
         Message-ID: {id}\r\nCancel-Lock: {lock}\r\n\r\nbody\r\n.\r\n"
    );
    c.send(text.as_bytes()).await;
    assert_eq!(c.line().await, format!("240 Article received {id}"));
    // Another POST is offered another message-id.
    let again = c.cmd("POST").await;
    assert!(again.starts_with("340 ") && !again.contains(&id), "{again}");
    c.send(b".\r\n").await;
    assert!(c.line().await.starts_with("441 "));

    let key = cancel_key(b"tin's own secret", "", &id);
    let cancel = format!(
        "From: a@example.com\r\nNewsgroups: local.test\r\nSubject: cmsg cancel {id}\r\n\
         Control: cancel {id}\r\nCancel-Key: {key}\r\n\r\ncancelled\r\n"
    );
    posted_id(&c.post(&cancel).await);
    assert_eq!(stat(&mut c, &id).await, "430");
    s.stop().await;
}

#[tokio::test]
async fn an_operator_cancels_a_post_made_here_on_every_server() {
    let (pa, pb) = (free_port(), free_port());
    let b = node("b", pb, vec![peer("a", None, "*")], &[]).await;
    let a = node("a", pa, vec![peer("b", Some(local(pb)), "*")], &[]).await;
    let mut poster = reader(a.addr).await;
    let id = posted_id(
        &poster
            .post(&article("local.test", "spam", "buy now\r\n"))
            .await,
    );
    let mut on_b = reader(b.addr).await;
    wait_stat(&mut on_b, &id, "223", "the article never reached B").await;
    let config = admin_config(&a, &format!("[server]\nlisten = [\"{}\"]\n", a.addr));

    let run = tidings(&config, &["article", "cancel", &id, "--json"]).await;
    assert!(run.ok, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["cancelled"], id.as_str());
    let cancel = v["cancel"]
        .as_str()
        .expect("the cancel's message-id")
        .to_owned();
    wait_stat(&mut on_b, &id, "430", "not withdrawn on B").await;
    assert_eq!(stat(&mut poster, &id).await, "430");
    let (_, head) = on_b.cmd_block(&format!("HEAD {cancel}"), "221").await;
    assert_eq!(
        header(&head, "Control"),
        Some(format!("cancel {id}").as_str())
    );

    // An article that came from elsewhere carries no lock of A's: the
    // operator is told to remove A's copy instead.
    let mut p = Client::connect(a.addr).await;
    assert!(p.cmd("MODE STREAM").await.starts_with("203 "));
    take(&mut p, &[("<else@o.test>", relayed("<else@o.test>", ""))]).await;
    let run = tidings(&config, &["article", "cancel", "<else@o.test>"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("no Cancel-Lock of this server"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("tidings article remove"),
        "{}",
        run.stderr
    );
    for s in [a, b] {
        s.stop().await;
    }
}
