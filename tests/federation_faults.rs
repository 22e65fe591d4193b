//! Bad input and faults on the federation paths: hosts that are no peer,
//! peers that send garbage or hang up mid-article, peers that answer our
//! feeder with nonsense, stop answering or defer, a flood of known
//! message-ids, and a feeding server killed with SIGKILL.
//!
//! Every test asserts what an operator would see: the response codes,
//! nothing stored lost or duplicated, everyone else served normally.
//! Servers listen on 127.0.0.1; peers connect from 127.0.0.1, readers from
//! 127.0.0.2 and unknown hosts from 127.0.0.3.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Client, DEADLINE, TestServer, article, free_port, node, peer, posted_id, reader, tcp_from,
};
use tidings::config::PeerConfig;
use tidings::feeds::outbound::{self, FeedTimings};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

/// A peer's connection (127.0.0.1), already in streaming mode.
async fn streaming_peer(addr: SocketAddr) -> Client {
    let mut p = Client::connect(addr).await;
    assert_eq!(p.cmd("MODE STREAM").await, "203 Streaming permitted");
    p
}

/// A relayed article as a peer sends it (dot-terminated, nothing to stuff).
fn relayed(id: &str) -> String {
    format!(
        "Path: origin.test!not-for-mail\r\nFrom: a@example.com\r\nNewsgroups: local.test\r\n\
         Subject: t\r\nMessage-ID: {id}\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n.\r\n"
    )
}

async fn count(server: &TestServer, group: &str) -> u64 {
    server
        .server()
        .store()
        .group(group)
        .await
        .expect("store")
        .expect("group")
        .count
}

/// Waits until `group` on `server` holds `n` articles (or fails).
async fn wait_for_count(server: &TestServer, group: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let c = count(server, group).await;
        if c >= n {
            assert_eq!(c, n, "{group} has more articles than expected");
            return;
        }
        assert!(Instant::now() < deadline, "{group} has {c} of {n} articles");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `f` every 20 ms until it holds, for at most `within`.
async fn eventually<F: Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// 1. A host that is no peer
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_host_gets_502_for_transit_and_stores_nothing() {
    let s = node("s", free_port(), vec![peer("p", None, "*")], &[]).await;
    let mut stranger = Client::from_stream(tcp_from("127.0.0.3", s.addr).await).await;
    assert!(
        stranger.greeting.starts_with("200"),
        "{}",
        stranger.greeting
    );
    let (_, caps) = stranger.cmd_block("CAPABILITIES", "101").await;
    assert!(
        !caps.iter().any(|c| c == "IHAVE" || c == "STREAMING"),
        "{caps:?}"
    );
    assert!(stranger.cmd("MODE STREAM").await.starts_with("502 "));
    assert!(stranger.cmd("CHECK <u1@x>").await.starts_with("502 "));
    assert!(stranger.cmd("IHAVE <u1@x>").await.starts_with("502 "));

    // A TAKETHIS whose article is half sent: the stranger's connection
    // holds nothing up; a reader is served at once.
    stranger
        .send(b"TAKETHIS <u1@x>\r\nPath: origin.test!not-for-mail\r\n")
        .await;
    let started = Instant::now();
    let mut r = reader(s.addr).await;
    assert_eq!(r.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // The rest of the article (a large one) is read, then refused with one
    // 502; the next command is answered in step.
    let body: String = (0..3000)
        .map(|_| format!("{}\r\n", "x".repeat(70)))
        .collect();
    let rest = format!(
        "From: a@example.com\r\nNewsgroups: local.test\r\nSubject: t\r\n\
         Message-ID: <u1@x>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n{body}.\r\n"
    );
    stranger.send(rest.as_bytes()).await;
    assert!(stranger.line().await.starts_with("502 "));
    stranger
        .send(format!("TAKETHIS <u2@x>\r\n{}", relayed("<u2@x>")).as_bytes())
        .await;
    assert!(stranger.line().await.starts_with("502 "));
    assert!(stranger.cmd("DATE").await.starts_with("111 "));

    assert_eq!(count(&s, "local.test").await, 0);
    assert!(r.cmd("STAT <u1@x>").await.starts_with("430"));
    assert!(r.cmd("STAT <u2@x>").await.starts_with("430"));
    // Nor were the ids remembered as refused: the real peer may still
    // deliver them.
    let mut p = streaming_peer(s.addr).await;
    assert_eq!(p.cmd("CHECK <u1@x>").await, "238 <u1@x>");
    p.send(format!("TAKETHIS <u1@x>\r\n{}", relayed("<u1@x>")).as_bytes())
        .await;
    assert_eq!(p.line().await, "239 <u1@x>");
    assert!(r.cmd("STAT <u1@x>").await.starts_with("223"));
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Garbage from a peer in streaming mode
// ---------------------------------------------------------------------------

/// Sends `burst` in one write, then reads one answer per expected code and
/// checks each answer's code (and, for RFC 4644 answers, the message-id).
async fn burst_answers(p: &mut Client, burst: &[u8], expected: &[(&str, Option<&str>)]) {
    p.send(burst).await;
    for (code, id) in expected {
        let line = p.line().await;
        assert!(
            line.starts_with(&format!("{code} ")),
            "expected {code} {id:?}, got {line:?}"
        );
        if let Some(id) = id {
            assert_eq!(line.split_whitespace().nth(1), Some(*id), "{line}");
        }
    }
}

/// `burst_answers` with the expected message-ids owned.
async fn burst_answers_owned(p: &mut Client, burst: &str, expected: &[(&str, Option<String>)]) {
    let expected: Vec<(&str, Option<&str>)> =
        expected.iter().map(|(c, id)| (*c, id.as_deref())).collect();
    burst_answers(p, burst.as_bytes(), &expected).await;
}

#[tokio::test]
async fn garbage_from_a_streaming_peer_is_answered_in_step_and_the_stream_stays_usable() {
    let s = node("s", free_port(), vec![peer("p", None, "*")], &[]).await;
    let mut p = streaming_peer(s.addr).await;
    let mut burst: Vec<u8> = Vec::new();
    let mut expected = Vec::new();
    // Binary junk in command position: 500.
    burst.extend_from_slice(b"\x00\x01\x02\xff\xfe\r\n");
    expected.push(("500", None));
    burst.extend_from_slice(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n");
    expected.push(("500", None));
    burst.extend_from_slice(b"\xff\xfe CHECK <j@x>\r\n");
    expected.push(("500", None));
    burst.extend_from_slice(b"\r\n");
    expected.push(("500", None));
    // A command line far over 512 octets: 501.
    burst.extend_from_slice(&[b'A'; 3000]);
    burst.extend_from_slice(b"\r\n");
    expected.push(("501", None));
    // CHECK with no, or a malformed, message-id: 501.
    for bad in [
        &b"CHECK"[..],
        b"CHECK not-an-id",
        b"CHECK <a b@x>",
        b"CHECK <>",
        b"CHECK <a@x> extra",
        b"CHECK <\xff\xfe@x>",
        b"CHECK <a>b@x>",
    ] {
        burst.extend_from_slice(bad);
        burst.extend_from_slice(b"\r\n");
        expected.push(("501", None));
    }
    // TAKETHIS with a malformed article: 439, the article is swallowed.
    burst.extend_from_slice(b"TAKETHIS <g1@x>\r\nSubject: no other headers\r\n\r\nbody\r\n.\r\n");
    expected.push(("439", Some("<g1@x>")));
    burst.extend_from_slice(
        b"TAKETHIS <g2@x>\r\n\x00\x01\xff\xfe\r\nnot a header at all\r\n\r\n.\r\n",
    );
    expected.push(("439", Some("<g2@x>")));
    burst.extend_from_slice(b"TAKETHIS <g3@x>\r\n.\r\n");
    expected.push(("439", Some("<g3@x>")));
    burst.extend_from_slice(format!("TAKETHIS <g4@x>\r\n{}", relayed("<other@x>")).as_bytes());
    expected.push(("439", Some("<g4@x>")));
    // And then a valid one: 239, and it is known from then on.
    burst.extend_from_slice(format!("TAKETHIS <g5@x>\r\n{}", relayed("<g5@x>")).as_bytes());
    expected.push(("239", Some("<g5@x>")));
    burst_answers(&mut p, &burst, &expected).await;

    // The connection is still in step for plain commands and more articles;
    // what was refused is remembered, what was taken is known.
    assert!(p.cmd("DATE").await.starts_with("111 "));
    assert_eq!(p.cmd("CHECK <g5@x>").await, "438 <g5@x>");
    assert_eq!(p.cmd("CHECK <g1@x>").await, "438 <g1@x>");
    assert_eq!(p.cmd("CHECK <g6@x>").await, "238 <g6@x>");
    p.send(format!("TAKETHIS <g6@x>\r\n{}", relayed("<g6@x>")).as_bytes())
        .await;
    assert_eq!(p.line().await, "239 <g6@x>");
    assert_eq!(count(&s, "local.test").await, 2);
    let mut r = reader(s.addr).await;
    for (id, code) in [
        ("<g5@x>", "223"),
        ("<g6@x>", "223"),
        ("<g1@x>", "430"),
        ("<g4@x>", "430"),
    ] {
        let status = r.cmd(&format!("STAT {id}")).await;
        assert!(status.starts_with(code), "STAT {id}: {status}");
    }
    s.stop().await;
}

/// A TAKETHIS whose message-id is malformed is still followed by its
/// article (the peer does not wait for an answer): the server must read
/// and drop that article and answer once, or every line of the article is
/// taken for a command and the stream is out of step.
#[tokio::test]
async fn a_takethis_with_a_malformed_message_id_still_has_its_article_read() {
    let s = node("s", free_port(), vec![peer("p", None, "*")], &[]).await;
    let mut p = streaming_peer(s.addr).await;
    p.send(format!("TAKETHIS not-an-id\r\n{}DATE\r\n", relayed("<t@x>")).as_bytes())
        .await;
    let first = p.line().await;
    assert!(
        first.starts_with("501 ") || first.starts_with("439 "),
        "{first}"
    );
    let next = p.line().await;
    assert!(
        next.starts_with("111 "),
        "out of step: {next:?} after {first:?}"
    );
    assert_eq!(count(&s, "local.test").await, 0);
    s.stop().await;
}

/// A burst's articles go to the writer in parts; when a part leaves with
/// the next article already in hand, the writer holds its commit for that
/// article. Whatever comes next (the rest of a half-sent article, a
/// duplicate answered without the writer, nothing at all), every article
/// read whole is answered, in order, and stored once.
#[tokio::test]
async fn a_burst_is_answered_whole_whatever_follows_its_front() {
    let s = node("s", free_port(), vec![peer("p", None, "*")], &[]).await;
    let mut p = streaming_peer(s.addr).await;
    let takethis = |id: &str| format!("TAKETHIS {id}\r\n{}", relayed(id));

    // The ids of articles `range`, and the answers they get, in order.
    let ids = |range: std::ops::Range<usize>| -> Vec<String> {
        range.map(|i| format!("<b{i}@x>")).collect()
    };
    let expect = |ids: &[String], code: &'static str| -> Vec<(&'static str, Option<String>)> {
        ids.iter().map(|id| (code, Some(id.clone()))).collect()
    };

    // 20 whole articles and half of a 21st: the 20 are answered before
    // the rest of the 21st is sent.
    let front_ids = ids(0..20);
    let mut burst: String = front_ids.iter().map(|id| takethis(id)).collect();
    let last = takethis("<b20@x>");
    let (front, back) = last.split_at(last.len() / 2);
    burst.push_str(front);
    burst_answers_owned(&mut p, &burst, &expect(&front_ids, "239")).await;
    p.send(back.as_bytes()).await;
    assert_eq!(p.line().await, "239 <b20@x>");

    // 16 new articles, then one already stored (refused without the
    // writer, though the 16 left promising it), then silence.
    let new_ids = ids(21..37);
    let mut burst: String = new_ids.iter().map(|id| takethis(id)).collect();
    burst.push_str(&takethis("<b3@x>"));
    let mut expected = expect(&new_ids, "239");
    expected.push(("439", Some("<b3@x>".to_owned())));
    burst_answers_owned(&mut p, &burst, &expected).await;

    // Far more than one part at once.
    let many = ids(37..137);
    let burst: String = many.iter().map(|id| takethis(id)).collect();
    burst_answers_owned(&mut p, &burst, &expect(&many, "239")).await;

    assert_eq!(count(&s, "local.test").await, 137);
    let mut r = reader(s.addr).await;
    for i in [0, 15, 16, 19, 20, 21, 36, 37, 52, 53, 136] {
        let status = r.cmd(&format!("STAT <b{i}@x>")).await;
        assert!(status.starts_with("223"), "STAT <b{i}@x>: {status}");
    }
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 3. A peer that hangs up in the middle of an article
// ---------------------------------------------------------------------------

/// CHECK on a fresh streaming connection until it is not 431 (the old
/// connection's end may take the server a moment to notice); the answer
/// and how long it took.
async fn check_after_drop(addr: SocketAddr, id: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut p = streaming_peer(addr).await;
    loop {
        let answer = p.cmd(&format!("CHECK {id}")).await;
        if !answer.starts_with("431") || started.elapsed() > Duration::from_secs(2) {
            return (answer, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_peer_hanging_up_mid_article_leaves_nothing_and_may_offer_it_again() {
    let s = node("s", free_port(), vec![peer("p", None, "*")], &[]).await;
    let mut r = reader(s.addr).await;

    // TAKETHIS: a complete article, then one cut off in its body, and the
    // peer hangs up without reading its answers.
    let whole = relayed("<d1@x>");
    let mut p = streaming_peer(s.addr).await;
    p.send(
        format!(
            "TAKETHIS <d0@x>\r\n{}TAKETHIS <d1@x>\r\n{}",
            relayed("<d0@x>"),
            &whole[..whole.len() / 2]
        )
        .as_bytes(),
    )
    .await;
    drop(p);
    let (answer, took) = check_after_drop(s.addr, "<d1@x>").await;
    assert_eq!(answer, "238 <d1@x>", "after {took:?}");
    assert!(r.cmd("STAT <d1@x>").await.starts_with("430"));
    // The complete one is stored (its 239 was owed when the peer left):
    // offered again it is not wanted.
    eventually("d0 stored", Duration::from_secs(2), || {
        let addr = s.addr;
        async move {
            let mut r = reader(addr).await;
            r.cmd("STAT <d0@x>").await.starts_with("223")
        }
    })
    .await;
    let (answer, _) = check_after_drop(s.addr, "<d0@x>").await;
    assert_eq!(answer, "438 <d0@x>");
    let mut p = streaming_peer(s.addr).await;
    p.send(format!("TAKETHIS <d1@x>\r\n{whole}").as_bytes())
        .await;
    assert_eq!(p.line().await, "239 <d1@x>");

    // TAKETHIS cut off right after its command line.
    let mut p = streaming_peer(s.addr).await;
    p.send(b"TAKETHIS <d2@x>\r\n").await;
    drop(p);
    let (answer, took) = check_after_drop(s.addr, "<d2@x>").await;
    assert_eq!(answer, "238 <d2@x>", "after {took:?}");
    let mut p = streaming_peer(s.addr).await;
    p.send(format!("TAKETHIS <d2@x>\r\n{}", relayed("<d2@x>")).as_bytes())
        .await;
    assert_eq!(p.line().await, "239 <d2@x>");

    // IHAVE: 335, half the article, hang up.
    let whole = relayed("<i1@x>");
    let mut q = Client::connect(s.addr).await;
    assert!(q.cmd("IHAVE <i1@x>").await.starts_with("335"));
    q.send(&whole.as_bytes()[..whole.len() / 2]).await;
    drop(q);
    let (answer, took) = check_after_drop(s.addr, "<i1@x>").await;
    assert_eq!(answer, "238 <i1@x>", "after {took:?}");
    assert!(r.cmd("STAT <i1@x>").await.starts_with("430"));
    let mut q = Client::connect(s.addr).await;
    assert!(q.cmd("IHAVE <i1@x>").await.starts_with("335"));
    q.send(whole.as_bytes()).await;
    assert!(q.line().await.starts_with("235"));

    // IHAVE cut off right after the 335, before any of the article.
    let mut q = Client::connect(s.addr).await;
    assert!(q.cmd("IHAVE <i2@x>").await.starts_with("335"));
    drop(q);
    let mut q = Client::connect(s.addr).await;
    let started = Instant::now();
    loop {
        let answer = q.cmd("IHAVE <i2@x>").await;
        if answer.starts_with("335") {
            break;
        }
        assert!(answer.starts_with("436"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(2), "still 436");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    q.send(relayed("<i2@x>").as_bytes()).await;
    assert!(q.line().await.starts_with("235"));

    assert_eq!(count(&s, "local.test").await, 5);
    for id in ["<d0@x>", "<d1@x>", "<d2@x>", "<i1@x>", "<i2@x>"] {
        assert!(
            r.cmd(&format!("STAT {id}")).await.starts_with("223"),
            "{id}"
        );
    }
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Our feeder against a peer that misbehaves
// ---------------------------------------------------------------------------

/// How the fake peer misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// On its first `times` connections, answers the first TAKETHIS with
    /// "200 what" and then nothing more.
    Nonsense,
    /// On its first `times` connections, answers CHECKs but never a
    /// TAKETHIS (nor anything after it).
    Hang,
    /// Answers 431 to the first `times` CHECKs of each id in `defer`.
    Defer,
    /// Answers "501 Syntax error" to every CHECK of an id in `defer` (it
    /// finds the message-id invalid).
    Choke,
    /// Hangs up on every TAKETHIS of an id in `defer` (it crashes on it).
    HangUp,
    /// On its first `times` connections, answers the third TAKETHIS with
    /// "400 Server shutting down" and hangs up (a peer being restarted).
    ShutDown,
    /// On its first `times` connections, hangs up without a word on the
    /// third TAKETHIS (a peer killed, or INN stopped with rc.news stop).
    Vanish,
    /// On its first `times` connections, answers every TAKETHIS until it
    /// hangs up without a word on the `LATE_TAKETHIS`th: late in a round
    /// of several parts.
    VanishLate,
    /// Offers no streaming: IHAVE only. On its first `times` connections it
    /// hangs up after reading the first article; it answers 436 to the
    /// first IHAVE of each id in `defer`.
    IhaveOnly,
    /// Takes `times` milliseconds over each TAKETHIS (a slow disk).
    Slow,
}

/// The TAKETHIS a `Fault::VanishLate` peer hangs up on.
const LATE_TAKETHIS: usize = 35;

#[derive(Default)]
struct FakeState {
    /// When each connection was accepted.
    connections: Vec<Instant>,
    /// What it holds.
    has: HashSet<String>,
    /// 239s sent, per message-id.
    accepted: HashMap<String, usize>,
    /// 431s sent, per message-id.
    deferred: HashMap<String, usize>,
    /// TAKETHIS received, per message-id.
    takethis: HashMap<String, usize>,
    /// CHECK received, per message-id.
    checks: HashMap<String, usize>,
}

/// A small streaming NNTP peer on 127.0.0.1 that keeps what it is given
/// (438 / 439 for what it has) and misbehaves as told.
struct FakePeer {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakePeer {
    async fn start(fault: Fault, times: usize, defer: HashSet<String>) -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(FakeState::default()));
        let shared = state.clone();
        let defer = Arc::new(defer);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = {
                    let mut s = shared.lock().unwrap();
                    s.connections.push(Instant::now());
                    s.connections.len()
                };
                let misbehave = match fault {
                    Fault::Nonsense
                    | Fault::Hang
                    | Fault::IhaveOnly
                    | Fault::ShutDown
                    | Fault::Vanish
                    | Fault::VanishLate => n <= times,
                    Fault::Defer | Fault::Choke | Fault::HangUp | Fault::Slow => false,
                };
                tokio::spawn(fake_session(
                    stream,
                    shared.clone(),
                    fault,
                    misbehave,
                    times,
                    defer.clone(),
                ));
            }
        });
        FakePeer { addr, state, task }
    }

    fn accepted(&self) -> HashMap<String, usize> {
        self.state.lock().unwrap().accepted.clone()
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fake_session(
    stream: TcpStream,
    state: Arc<Mutex<FakeState>>,
    fault: Fault,
    misbehave: bool,
    times: usize,
    defer: Arc<HashSet<String>>,
) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut mute = false;
    let mut takethis_here = 0;
    if w.write_all(b"200 fake.test ready\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let verb = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        let id = words.get(1).map(|s| s.to_string()).unwrap_or_default();
        let answer = match verb.as_str() {
            "CAPABILITIES" if fault == Fault::IhaveOnly => {
                "101 Capability list:\r\nVERSION 2\r\nIHAVE\r\n.\r\n".to_owned()
            }
            "IHAVE" => {
                let verdict = {
                    let mut s = state.lock().unwrap();
                    let asked = s.deferred.get(&id).copied().unwrap_or(0);
                    if s.has.contains(&id) {
                        "435 Duplicate\r\n"
                    } else if defer.contains(&id) && asked < 1 {
                        *s.deferred.entry(id.clone()).or_default() += 1;
                        "436 Later\r\n"
                    } else {
                        ""
                    }
                };
                if !verdict.is_empty() {
                    verdict.to_owned()
                } else {
                    if w.write_all(b"335 Send it\r\n").await.is_err() {
                        return;
                    }
                    let mut l = String::new();
                    loop {
                        l.clear();
                        match r.read_line(&mut l).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if l == ".\r\n" {
                            break;
                        }
                    }
                    if misbehave {
                        return;
                    }
                    let mut s = state.lock().unwrap();
                    if s.has.insert(id.clone()) {
                        *s.accepted.entry(id.clone()).or_default() += 1;
                        "235 Thanks\r\n".to_owned()
                    } else {
                        "437 Duplicate\r\n".to_owned()
                    }
                }
            }
            "CAPABILITIES" => {
                "101 Capability list:\r\nVERSION 2\r\nIHAVE\r\nSTREAMING\r\n.\r\n".to_owned()
            }
            "MODE" => "203 Streaming permitted\r\n".to_owned(),
            "QUIT" => {
                let _ = w.write_all(b"205 bye\r\n").await;
                return;
            }
            "CHECK" => {
                let mut s = state.lock().unwrap();
                *s.checks.entry(id.clone()).or_default() += 1;
                let asked = s.deferred.get(&id).copied().unwrap_or(0);
                if fault == Fault::Choke && defer.contains(&id) {
                    "501 Syntax error\r\n".to_owned()
                } else if fault == Fault::Defer && defer.contains(&id) && asked < times {
                    *s.deferred.entry(id.clone()).or_default() += 1;
                    format!("431 {id}\r\n")
                } else if s.has.contains(&id) {
                    format!("438 {id}\r\n")
                } else {
                    format!("238 {id}\r\n")
                }
            }
            "TAKETHIS" => {
                // Read the article whatever becomes of it.
                let mut l = String::new();
                loop {
                    l.clear();
                    match r.read_line(&mut l).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if l == ".\r\n" {
                        break;
                    }
                }
                takethis_here += 1;
                let breaks_at = if fault == Fault::VanishLate {
                    LATE_TAKETHIS
                } else {
                    3
                };
                if misbehave
                    && takethis_here == breaks_at
                    && matches!(fault, Fault::ShutDown | Fault::Vanish | Fault::VanishLate)
                {
                    if fault == Fault::ShutDown {
                        let _ = w.write_all(b"400 Server shutting down\r\n").await;
                    }
                    return;
                }
                if fault == Fault::Slow {
                    tokio::time::sleep(Duration::from_millis(times as u64)).await;
                }
                let mut s = state.lock().unwrap();
                *s.takethis.entry(id.clone()).or_default() += 1;
                if fault == Fault::HangUp && defer.contains(&id) {
                    return;
                }
                if mute {
                    // Gone silent: it keeps nothing more.
                    String::new()
                } else if misbehave && fault != Fault::VanishLate {
                    mute = true;
                    match fault {
                        Fault::Nonsense => "200 what\r\n".to_owned(),
                        _ => String::new(),
                    }
                } else if s.has.insert(id.clone()) {
                    *s.accepted.entry(id.clone()).or_default() += 1;
                    format!("239 {id}\r\n")
                } else {
                    format!("439 {id}\r\n")
                }
            }
            _ => "500 what?\r\n".to_owned(),
        };
        if answer.is_empty() || (mute && !answer.starts_with("200 what")) {
            continue;
        }
        if w.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Posts `n` articles to `server` (as a reader) and returns their ids.
async fn post_many(server: &TestServer, n: usize, tag: &str) -> Vec<String> {
    let mut poster = reader(server.addr).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let status = poster
            .post(&article("local.test", &format!("{tag} {i}"), "x\r\n"))
            .await;
        ids.push(posted_id(&status));
    }
    ids
}

/// Waits until the fake peer holds every one of `ids`, then checks each
/// was accepted (239) exactly once and nothing else arrived.
async fn every_article_reaches_it_once(fake: &FakePeer, ids: &[String], within: Duration) {
    eventually("every article at the fake peer", within, || async {
        let accepted = fake.accepted();
        ids.iter().all(|id| accepted.contains_key(id))
    })
    .await;
    // Settle: nothing more (no second 239) arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted = fake.accepted();
    assert_eq!(accepted.len(), ids.len(), "{accepted:?}");
    for id in ids {
        assert_eq!(accepted.get(id), Some(&1), "239s for {id}");
    }
}

/// Short clocks for a feeder run by the test itself.
fn quick() -> FeedTimings {
    FeedTimings {
        answer_timeout: Duration::from_millis(300),
        retry_delay: Duration::from_secs(1),
        first_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        healthy_after: Duration::from_secs(30),
    }
}

/// A feeder for `peer` on `server`'s store, run by the test on `timings`
/// (the server runs none: the peer has no address in its config).
struct TestFeeder {
    stop: watch::Sender<bool>,
    _head: watch::Sender<i64>,
    task: tokio::task::JoinHandle<()>,
}

impl TestFeeder {
    fn start(server: &TestServer, peer: PeerConfig, timings: FeedTimings) -> TestFeeder {
        let (stop, stop_rx) = watch::channel(false);
        let (head, head_rx) = watch::channel(0);
        let store = server.server().store().clone();
        let task = tokio::spawn(outbound::run_with(peer, store, head_rx, stop_rx, timings));
        TestFeeder {
            stop,
            _head: head,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("feeder stopped in time")
            .expect("feeder task");
    }
}

/// The peer answers TAKETHIS with "200 what" on its first two connections:
/// the feeder drops the connection, backs off (100 ms, then 200 ms),
/// reconnects and re-offers; every article gets there once, and the
/// operator sees the error.
#[tokio::test]
async fn a_peer_answering_nonsense_is_dropped_and_fed_again_after_backoff() {
    let fake = FakePeer::start(Fault::Nonsense, 2, HashSet::new()).await;
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let ids = post_many(&a, 20, "nonsense").await;
    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), quick());
    every_article_reaches_it_once(&fake, &ids, Duration::from_secs(10)).await;

    let connections = fake.state.lock().unwrap().connections.clone();
    assert_eq!(connections.len(), 3, "one connection per attempt");
    let first_wait = connections[1] - connections[0];
    let second_wait = connections[2] - connections[1];
    assert!(first_wait >= Duration::from_millis(100), "{first_wait:?}");
    assert!(second_wait >= Duration::from_millis(200), "{second_wait:?}");

    let state = a.server().store().peer_state("fake").await.expect("state");
    let error = state.last_error.expect("last_error set");
    assert!(error.contains("200 what"), "{error}");
    assert!(state.last_error_at.is_some());
    assert!(state.connected_at.is_some(), "connected again");
    assert_eq!(state.accepted, 20);
    feeder.stop().await;
    a.stop().await;
}

/// Feeds 20 articles to a fake peer that breaks off `times` sessions with
/// `fault`, with a retry delay of a minute (far past the deadline): every
/// article must get there once within seconds, over `times + 1`
/// connections, and the last error must say `said`.
async fn every_unanswered_article_goes_out_on_the_next_connection(
    fault: Fault,
    times: usize,
    said: &str,
) {
    let fake = FakePeer::start(fault, times, HashSet::new()).await;
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let ids = post_many(&a, 20, "break").await;
    let timings = FeedTimings {
        retry_delay: Duration::from_secs(60),
        ..quick()
    };
    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), timings);
    every_article_reaches_it_once(&fake, &ids, Duration::from_secs(10)).await;

    assert_eq!(fake.state.lock().unwrap().connections.len(), times + 1);
    let state = a.server().store().peer_state("fake").await.expect("state");
    let error = state.last_error.expect("last_error set");
    assert!(error.contains(said), "{error}");
    assert!(!error.contains("protocol error"), "{error}");
    assert_eq!(state.accepted, 20);
    feeder.stop().await;
    a.stop().await;
}

/// The peer answers a TAKETHIS with 400 and hangs up, as a server does
/// that is being restarted, on its first two connections: the article in
/// hand is not the peer's problem, so it is offered again on the next
/// connection with the others, not after the retry delay.
#[tokio::test]
async fn a_peer_shutting_down_gets_every_unanswered_article_on_the_next_connection() {
    every_unanswered_article_goes_out_on_the_next_connection(
        Fault::ShutDown,
        2,
        "400 Server shutting down",
    )
    .await;
}

/// The peer hangs up without a word on a TAKETHIS, once, as INN does when
/// it is stopped: the article whose answer was awaited goes out again on
/// the next connection with the others, not after the retry delay. Only
/// an article awaited at two breaks in a row waits
/// (`an_article_the_peer_hangs_up_on_does_not_hold_up_the_feed`).
#[tokio::test]
async fn a_peer_that_vanishes_once_gets_every_unanswered_article_on_the_next_connection() {
    every_unanswered_article_goes_out_on_the_next_connection(
        Fault::Vanish,
        1,
        "peer closed the connection",
    )
    .await;
}

/// A backlog larger than the feeder reads at once (16 MiB) goes out as
/// one round of several parts, the window kept full from one part to the
/// next. The peer hangs up without a word in the second part: every
/// article it had answered stays answered (none is sent twice), and every
/// other one goes out on the next connection, each accepted once.
#[tokio::test]
async fn a_round_of_several_parts_broken_in_its_second_resends_only_the_unanswered() {
    let fake = FakePeer::start(Fault::VanishLate, 1, HashSet::new()).await;
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let mut poster = reader(a.addr).await;
    let body = ("y".repeat(998) + "\r\n").repeat(600); // ~600 KB each: ~24 MB
    let mut ids = Vec::new();
    for i in 0..40 {
        let status = poster
            .post(&article("local.test", &format!("part {i}"), &body))
            .await;
        assert!(status.starts_with("240"), "{status}");
        ids.push(posted_id(&status));
    }
    let timings = FeedTimings {
        retry_delay: Duration::from_secs(60),
        ..quick()
    };
    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), timings);
    every_article_reaches_it_once(&fake, &ids, Duration::from_secs(20)).await;

    let (connections, takethis) = {
        let state = fake.state.lock().unwrap();
        (state.connections.len(), state.takethis.clone())
    };
    assert_eq!(connections, 2);
    // 16 MiB holds 27 of them: the break came in the round's second part.
    // The fake counts each TAKETHIS it reads but the one it hung up on:
    // none was sent twice, the one cut off was sent on the next connection.
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(takethis.get(id), Some(&1), "article {i}");
    }
    let state = a.server().store().peer_state("fake").await.expect("state");
    assert_eq!(state.accepted, 40);
    feeder.stop().await;
    a.stop().await;
}

/// The peer answers CHECK but then never TAKETHIS on its first two
/// connections: the feeder times out, reconnects, and re-offers.
#[tokio::test]
async fn a_peer_that_stops_answering_is_timed_out_and_fed_again() {
    let fake = FakePeer::start(Fault::Hang, 2, HashSet::new()).await;
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let ids = post_many(&a, 20, "hang").await;
    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), quick());
    every_article_reaches_it_once(&fake, &ids, Duration::from_secs(10)).await;

    let state = a.server().store().peer_state("fake").await.expect("state");
    let error = state.last_error.expect("last_error set");
    assert!(error.contains("did not answer"), "{error}");
    assert_eq!(state.accepted, 20);
    assert_eq!(fake.state.lock().unwrap().connections.len(), 3);
    feeder.stop().await;
    a.stop().await;
}

/// `streaming = false`: the feeder sends IHAVE even to a peer that offers
/// STREAMING (a peer whose streaming is known to be broken, say).
#[tokio::test]
async fn a_peer_configured_without_streaming_is_fed_with_ihave() {
    let fake = FakePeer::start(Fault::Defer, 0, HashSet::new()).await;
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let ids = post_many(&a, 10, "ihave").await;
    let mut lock_step = peer("fake", Some(fake.addr), "*");
    lock_step.streaming = false;
    let feeder = TestFeeder::start(&a, lock_step, quick());
    every_article_reaches_it_once(&fake, &ids, Duration::from_secs(10)).await;
    let takethis = fake.state.lock().unwrap().takethis.len();
    assert_eq!(takethis, 0, "no TAKETHIS: every article came by IHAVE");
    feeder.stop().await;
    a.stop().await;
}

/// A feeder told to stop while the peer owes it answers stops then and
/// there, not after the peer's answer timeout (60 s by default): a server
/// shutting down, or a reload changing the peer, is not held up. What it
/// had sent and not had answered is offered again by the next feeder.
#[tokio::test]
async fn a_feeder_stops_at_once_in_the_middle_of_a_round() {
    let fake = FakePeer::start(Fault::Hang, 1, HashSet::new()).await;
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let ids = post_many(&a, 20, "stop").await;
    let patient = FeedTimings {
        answer_timeout: Duration::from_secs(60),
        ..quick()
    };
    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), patient);
    eventually("a TAKETHIS left unanswered", DEADLINE, || async {
        !fake.state.lock().unwrap().takethis.is_empty()
    })
    .await;
    let asked = Instant::now();
    feeder.stop().await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");
    let state = a.server().store().peer_state("fake").await.expect("state");
    assert!(state.connected_at.is_none(), "not connected once stopped");

    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), patient);
    every_article_reaches_it_once(&fake, &ids, Duration::from_secs(10)).await;
    feeder.stop().await;
    a.stop().await;
}

/// A peer that answers nothing until the feeder stops sending (a burst
/// at a time): the most commands it ever holds unanswered is the feeder's
/// window, never more, and every article still gets there.
#[tokio::test]
async fn a_feeder_never_has_more_than_its_window_in_flight() {
    const WINDOW: usize = 4;
    const ARTICLES: usize = 40;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let most = Arc::new(Mutex::new((0usize, 0usize)));
    let seen = most.clone();
    let fake = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"200 fake.test ready\r\n")
            .await
            .expect("greet");
        // Answers owed, sent once the feeder has gone quiet for 50 ms.
        let mut owed: Vec<String> = Vec::new();
        loop {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_millis(50), r.read_line(&mut line)).await;
            let Ok(read) = read else {
                {
                    let mut s = seen.lock().unwrap();
                    s.0 = s.0.max(owed.len());
                }
                for answer in owed.drain(..) {
                    w.write_all(answer.as_bytes()).await.expect("answer");
                }
                continue;
            };
            if matches!(read, Ok(0) | Err(_)) {
                return;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let id = words.get(1).copied().unwrap_or_default().to_owned();
            match words.first().map(|v| v.to_ascii_uppercase()).as_deref() {
                Some("CAPABILITIES") => w
                    .write_all(b"101 Capability list:\r\nVERSION 2\r\nSTREAMING\r\n.\r\n")
                    .await
                    .expect("caps"),
                Some("MODE") => w
                    .write_all(b"203 Streaming permitted\r\n")
                    .await
                    .expect("mode"),
                Some("CHECK") => owed.push(format!("238 {id}\r\n")),
                Some("TAKETHIS") => {
                    let mut l = String::new();
                    while l != ".\r\n" {
                        l.clear();
                        if matches!(r.read_line(&mut l).await, Ok(0) | Err(_)) {
                            return;
                        }
                    }
                    owed.push(format!("239 {id}\r\n"));
                    seen.lock().unwrap().1 += 1;
                }
                Some("QUIT") => return,
                _ => w.write_all(b"500 what?\r\n").await.expect("500"),
            }
        }
    });
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    post_many(&a, ARTICLES, "window").await;
    let mut narrow = peer("fake", Some(addr), "*");
    narrow.window = WINDOW;
    let feeder = TestFeeder::start(&a, narrow, quick());
    eventually("every article taken", Duration::from_secs(20), || async {
        most.lock().unwrap().1 == ARTICLES
    })
    .await;
    let held = most.lock().unwrap().0;
    assert!(held <= WINDOW, "{held} commands in flight, window {WINDOW}");
    assert!(held >= 2, "commands were not pipelined ({held})");
    feeder.stop().await;
    fake.abort();
    a.stop().await;
}

/// How far apart a feeder on `timings` connects to a peer that hangs up
/// at once, `attempts` times, except on the `healthy`th connection: that
/// one it keeps for 600 ms (answering CAPABILITIES and MODE STREAM), a
/// session long enough to count as healthy, then it hangs up on the idle
/// feed.
async fn reconnection_gaps(
    timings: FeedTimings,
    attempts: usize,
    healthy: Option<usize>,
) -> Vec<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = times.clone();
    let fake = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = {
                let mut s = seen.lock().unwrap();
                s.push(Instant::now());
                s.len()
            };
            if Some(n) != healthy {
                continue;
            }
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            let _ = w.write_all(b"200 fake.test ready\r\n").await;
            let until = Instant::now() + Duration::from_millis(600);
            let mut line = String::new();
            while let Ok(Ok(n)) =
                tokio::time::timeout_at(until.into(), r.read_line(&mut line)).await
            {
                if n == 0 {
                    break;
                }
                let answer: &[u8] = match line.split_whitespace().next() {
                    Some("CAPABILITIES") => {
                        b"101 Capability list:\r\nVERSION 2\r\nSTREAMING\r\n.\r\n"
                    }
                    Some("MODE") => b"203 Streaming permitted\r\n",
                    _ => b"500 what?\r\n",
                };
                let _ = w.write_all(answer).await;
                line.clear();
            }
        }
    });
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let feeder = TestFeeder::start(&a, peer("fake", Some(addr), "*"), timings);
    eventually(
        "the connection attempts",
        Duration::from_secs(10),
        || async { times.lock().unwrap().len() >= attempts },
    )
    .await;
    feeder.stop().await;
    fake.abort();
    a.stop().await;
    let times = times.lock().unwrap().clone();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// A peer that hangs up at once, every time: the feeder waits longer and
/// longer between attempts (100 ms, 200 ms, ...), but never longer than
/// its `max_backoff`.
#[tokio::test]
async fn reconnections_back_off_up_to_the_cap() {
    let capped = FeedTimings {
        max_backoff: Duration::from_millis(400),
        ..quick()
    };
    let gaps = reconnection_gaps(capped, 7, None).await;
    // 100, 200, 400, 400, 400, 400 ms, give or take a busy machine;
    // without the cap the last would be 1.6 s and 3.2 s.
    assert!(gaps[0] >= Duration::from_millis(100), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(200), "{gaps:?}");
    for g in &gaps[2..6] {
        assert!(
            *g >= Duration::from_millis(400) && *g < Duration::from_millis(1500),
            "{gaps:?}"
        );
    }
}

/// After a session that lasted (`healthy_after`), the next failure backs
/// off from the first wait again, not from where the failures before it
/// had got to. The peer ends that session by hanging up on the idle feed,
/// which the feeder notices at once.
#[tokio::test]
async fn a_healthy_session_starts_the_backoff_afresh() {
    let timings = FeedTimings {
        max_backoff: Duration::from_secs(10),
        healthy_after: Duration::from_millis(400),
        ..quick()
    };
    let gaps = reconnection_gaps(timings, 6, Some(5)).await;
    // 100, 200, 400 ms between the failures; then the healthy session
    // (~600 ms) and a first wait of 100 ms again, not 800 ms.
    assert!(gaps[2] >= Duration::from_millis(400), "{gaps:?}");
    let after_healthy = gaps[4].saturating_sub(Duration::from_millis(600));
    assert!(after_healthy < Duration::from_millis(500), "{gaps:?}");
}

/// Peers that take the connection and then never say a word hold the
/// feeder outside any round (waiting for the greeting, up to the answer
/// timeout, 60 s by default): the server still shuts down within the
/// feeders' grace (5 s), once for all of them.
#[tokio::test]
async fn a_server_shuts_down_promptly_while_its_peers_say_nothing() {
    let mut mute = Vec::new();
    let mut peers = Vec::new();
    for i in 0..3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        peers.push(peer(
            &format!("mute{i}"),
            Some(listener.local_addr().expect("addr")),
            "*",
        ));
        mute.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        }));
    }
    let a = node("a", free_port(), peers, &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    a.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "shutting down took {took:?}");
    for task in mute {
        task.abort();
    }
}

/// A reload that changes a peer while its feeder is in the middle of a
/// round with it: the old feeder stops there and the new one starts after
/// it, never beside it. Side by side, both would offer the rest of the
/// round, and the peer would refuse (438) what the other had just sent.
#[tokio::test]
async fn a_reload_changing_a_peer_mid_round_never_runs_two_feeders_for_it() {
    const ARTICLES: usize = 200;
    const WINDOW: usize = 4;
    let fake = FakePeer::start(Fault::Slow, 10, HashSet::new()).await;
    let fed = |window: usize| {
        let text = format!(
            "[[peer]]\nname = \"fake\"\npath_identity = \"fake.test\"\naddress = \"{}\"\n\
             window = {window}\n",
            fake.addr
        );
        tidings::config::Config::parse(&text).expect("peer").peers
    };
    let mut a = node("a", free_port(), fed(WINDOW), &[]).await;
    let ids = post_many(&a, ARTICLES, "reload").await;
    eventually("the feed under way", DEADLINE, || async {
        fake.accepted().len() >= 20
    })
    .await;
    let mut config = a.config.clone();
    config.peers = fed(WINDOW + 1);
    a.server_mut().reload(config);
    every_article_reaches_it_once(&fake, &ids, Duration::from_secs(30)).await;

    let state = a.server().store().peer_state("fake").await.expect("state");
    // Only what the old feeder had in flight when it stopped may be
    // offered twice: the peer took it, or was still taking it, unanswered;
    // offered again, it is refused (438, or 439 when the CHECK came first).
    let twice = state.refused + state.rejected;
    assert_eq!(state.accepted + twice, ARTICLES as i64, "{state:?}");
    assert!(
        twice <= WINDOW as i64,
        "{twice} offered twice: two feeders ran at once ({state:?})"
    );
    assert!(state.connected_at.is_some(), "the new feeder is connected");
    a.stop().await;
}

/// An article the peer defers (431) waits for its retry in the backlog:
/// `peer status` counts it, and its bytes.
#[tokio::test]
async fn a_deferred_article_counts_in_the_backlog_with_its_bytes() {
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let ids = post_many(&a, 3, "backlog").await;
    let deferred = ids[1].clone();
    let fake = FakePeer::start(Fault::Defer, 100, HashSet::from([deferred.clone()])).await;
    let timings = FeedTimings {
        retry_delay: Duration::from_secs(60),
        ..quick()
    };
    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), timings);
    let store = a.server().store();
    // The round is saved once every answer is in (the two 239s, the 431).
    eventually("the round saved", Duration::from_secs(10), || async {
        let state = store.peer_state("fake").await.expect("state");
        state.accepted == 2 && state.deferred >= 1
    })
    .await;
    let id = tidings::wire::types::MessageId::try_from(deferred.as_str()).expect("message-id");
    let stored = store
        .article_by_msgid(&id)
        .await
        .expect("read")
        .expect("stored")
        .bytes;
    let state = store.peer_state("fake").await.expect("state");
    let backlog = store
        .peer_backlog("fake", state.cursor)
        .await
        .expect("backlog");
    assert_eq!(backlog, (1, stored.len() as i64));
    feeder.stop().await;
    a.stop().await;
}

/// The peer answers 431 to some ids' first two CHECKs: the feeder offers
/// them again later, on the same connection, until they are taken.
#[tokio::test]
async fn articles_deferred_with_431_are_offered_again_until_taken() {
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let ids = post_many(&a, 30, "defer").await;
    let defer: HashSet<String> = ids.iter().step_by(3).cloned().collect();
    let fake = FakePeer::start(Fault::Defer, 2, defer.clone()).await;
    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), quick());
    every_article_reaches_it_once(&fake, &ids, Duration::from_secs(10)).await;

    {
        let s = fake.state.lock().unwrap();
        for id in &defer {
            assert_eq!(s.deferred.get(id), Some(&2), "431s for {id}");
        }
        assert_eq!(s.connections.len(), 1, "431 is no reason to reconnect");
    }
    let state = a.server().store().peer_state("fake").await.expect("state");
    assert_eq!(state.last_error, None);
    assert_eq!(state.accepted, 30);
    assert_eq!(state.deferred, 2 * defer.len() as i64);
    let (backlog, _) = a
        .server()
        .store()
        .peer_backlog("fake", state.cursor)
        .await
        .expect("backlog");
    assert_eq!(backlog, 0, "no retry left waiting");
    feeder.stop().await;
    a.stop().await;
}

// ---------------------------------------------------------------------------
// 5. A flood of known message-ids
// ---------------------------------------------------------------------------

/// A socket's (send queue, receive queue) in bytes, from /proc/net/tcp:
/// what the kernel holds that the application has not taken.
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let hex = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => format!("{:08X}:{:04X}", u32::from_le_bytes(ip.octets()), a.port()),
        IpAddr::V6(_) => String::new(),
    };
    let (l, r) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&l.as_str()) || f.get(2) != Some(&r.as_str()) {
            return None;
        }
        let (tx, rx) = f.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

const FLOOD: usize = 100_000;

/// The i-th flood id: 240 octets, so the flood is 25 MB of CHECKs.
fn flood_id(i: usize) -> String {
    format!("<{i:06}.{}@flood.test>", "x".repeat(220))
}

#[tokio::test]
async fn a_flood_of_known_ids_gets_438_each_in_bounded_time_and_memory() {
    let s = node("s", free_port(), vec![peer("p", None, "*")], &[]).await;
    // History knows every flood id (as articles refused earlier). Written
    // straight into the database while the server is stopped: the server
    // learns history's ids when it starts (see ingest::known).
    let db = s.db_path();
    let (dir, config) = s.stop().await;
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
    sqlx::query(&format!(
        "INSERT INTO history (msgid, article_id, status, remember_until) \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
         SELECT '<' || printf('%06d', i) || '.' || '{}' || '@flood.test>', NULL, 1, \
         unixepoch() + 864000 FROM n",
        FLOOD - 1,
        "x".repeat(220)
    ))
    .execute(&pool)
    .await
    .expect("seed history");
    pool.close().await;
    let s = TestServer::start_in(dir, config).await;

    let mut p = streaming_peer(s.addr).await;
    assert_eq!(
        p.cmd(&format!("CHECK {}", flood_id(7))).await,
        format!("438 {}", flood_id(7))
    );
    let (mut r, mut w) = p.into_parts();
    let local = w.local_addr().expect("local");
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let counter = written.clone();
    let writer = tokio::spawn(async move {
        for batch in (0..FLOOD).collect::<Vec<_>>().chunks(500) {
            let mut out = Vec::with_capacity(batch.len() * 250);
            for &i in batch {
                out.extend_from_slice(format!("CHECK {}\r\n", flood_id(i)).as_bytes());
            }
            let mut off = 0;
            while off < out.len() {
                let n = w.write(&out[off..]).await.expect("write");
                off += n;
                counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
        w
    });

    // Read nothing until the writer stalls: the server must stop reading
    // once it owes ~1024 answers and its output is full, so what it holds
    // in memory stays bounded however much the peer sends.
    let mut last = 0;
    let mut still = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = written.load(std::sync::atomic::Ordering::Relaxed);
        if now != last {
            last = now;
            still = Instant::now();
        } else if still.elapsed() > Duration::from_millis(300) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "writer never stalled"
        );
    }
    let total = (FLOOD * 248) as u64;
    let (client_tx, client_rx) = tcp_queues(local, s.addr).expect("client socket");
    let (server_tx, server_rx) = tcp_queues(s.addr, local).expect("server socket");
    // Commands the server took off the socket, less those whose answers
    // it has already handed to the kernel: what it holds (owed answers,
    // unsent output, unparsed input).
    let taken = (last - client_tx - server_rx) / 248;
    let answered = (server_tx + client_rx) / 246;
    let held = taken.saturating_sub(answered);
    eprintln!(
        "flood: {last} of {total} bytes written when the writer stalled; the server \
         took {taken} commands and has {answered} answers in the kernel: it holds {held}"
    );
    assert!(
        last < total,
        "the server read the whole flood without answering"
    );
    assert!(
        held < 3000,
        "the server holds {held} commands' worth of work"
    );

    // Now read: every answer is 438 for its id, in order.
    let mut line = String::new();
    for i in 0..FLOOD {
        line.clear();
        let n = tokio::time::timeout(DEADLINE, r.read_line(&mut line))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "connection closed after {i} answers");
        let expected = format!("438 {}\r\n", flood_id(i));
        assert_eq!(line, expected, "answer {i}");
    }
    let elapsed = started.elapsed();
    let mut w = writer.await.expect("writer");
    eprintln!(
        "flood: {FLOOD} CHECKs answered 438 in {elapsed:?}: {:.0} per second",
        FLOOD as f64 / elapsed.as_secs_f64()
    );
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");

    // The session is still in step, and readers were served meanwhile.
    w.write_all(b"DATE\r\n").await.expect("write");
    line.clear();
    r.read_line(&mut line).await.expect("read");
    assert!(line.starts_with("111 "), "{line}");
    let mut rd = reader(s.addr).await;
    assert!(rd.cmd("GROUP local.test").await.starts_with("211"));
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 6. A feeding server killed with SIGKILL
// ---------------------------------------------------------------------------

/// The i-th article of the crash test, with its own Message-ID so that it
/// can be posted again after the crash.
fn crash_article(i: usize) -> String {
    format!(
        "From: Tester <tester@example.com>\r\nNewsgroups: local.test\r\nSubject: crash {i}\r\n\
         Message-ID: <crash-{i}@test>\r\n\r\nbody {i}\r\n.\r\n"
    )
}

/// POSTs on a raw connection; the status line, or `None` when the
/// connection broke (the server died).
async fn raw_post(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    text: &str,
) -> Option<String> {
    let mut line = String::new();
    w.write_all(b"POST\r\n").await.ok()?;
    if r.read_line(&mut line).await.ok()? == 0 || !line.starts_with("340") {
        return None;
    }
    w.write_all(text.as_bytes()).await.ok()?;
    line.clear();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    Some(line.trim_end().to_owned())
}

#[tokio::test]
async fn a_feeder_killed_mid_feed_resumes_and_the_peer_gets_everything_once() {
    const N: usize = 500;
    let pb = free_port();
    let b = node("b", pb, vec![peer("a", None, "*")], &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::binary_config(
        dir.path(),
        "a",
        &format!(
            "[[peer]]\nname = \"b\"\npath_identity = \"b.test\"\naddress = \"127.0.0.1:{pb}\"\n"
        ),
    );
    let (mut a, addr) = common::spawn_binary(BIN, &config).await;

    // Post from a task; kill A with SIGKILL once B has some of them (the
    // poster is then mid-POST or between two).
    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let poster = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let (r, mut w) = tcp_from("127.0.0.2", addr).await.into_split();
            let mut r = BufReader::new(r);
            let mut greeting = String::new();
            r.read_line(&mut greeting).await.expect("greeting");
            for i in 0..N {
                match raw_post(&mut r, &mut w, &crash_article(i)).await {
                    Some(status) if status.starts_with("240") => acked.lock().unwrap().push(i),
                    Some(status) => panic!("POST {i}: {status}"),
                    None => return,
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let on_b = count(&b, "local.test").await;
        if on_b >= 50 {
            break;
        }
        assert!(Instant::now() < deadline, "B has only {on_b}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.start_kill().expect("SIGKILL");
    let status = tokio::time::timeout(DEADLINE, a.wait())
        .await
        .expect("died in time")
        .expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    tokio::time::timeout(DEADLINE, poster)
        .await
        .expect("poster noticed")
        .expect("poster");
    let acked: Vec<usize> = acked.lock().unwrap().clone();
    let on_b = count(&b, "local.test").await;
    eprintln!(
        "crash: A acknowledged {} posts, B had {on_b} when A was killed",
        acked.len()
    );
    assert!(acked.len() < N, "A was killed after all were posted");
    assert!(on_b > 0 && on_b < N as u64);

    // Restart A on the same database: what it acknowledged is there.
    let (mut a, addr) = common::spawn_binary(BIN, &config).await;
    let mut ra = reader(addr).await;
    for &i in &acked {
        let status = ra.cmd(&format!("STAT <crash-{i}@test>")).await;
        assert!(status.starts_with("223"), "acknowledged {i} lost: {status}");
    }
    // Post the rest (the one in flight at the kill may have made it: 441).
    let (r, mut w) = tcp_from("127.0.0.2", addr).await.into_split();
    let mut r = BufReader::new(r);
    let mut greeting = String::new();
    r.read_line(&mut greeting).await.expect("greeting");
    for i in (0..N).filter(|i| !acked.contains(i)) {
        let status = raw_post(&mut r, &mut w, &crash_article(i))
            .await
            .expect("posted");
        assert!(
            status.starts_with("240") || status.contains("duplicate"),
            "POST {i}: {status}"
        );
    }

    // B ends with all of them, once each.
    wait_for_count(&b, "local.test", N as u64).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_for_count(&b, "local.test", N as u64).await;
    let mut rb = reader(b.addr).await;
    let (_, numbers) = rb.cmd_block("LISTGROUP local.test", "211").await;
    assert_eq!(numbers.len(), N);
    for i in 0..N {
        let status = rb.cmd(&format!("STAT <crash-{i}@test>")).await;
        assert!(status.starts_with("223"), "{i} missing on B: {status}");
    }
    let (_, numbers) = ra.cmd_block("LISTGROUP local.test", "211").await;
    assert_eq!(numbers.len(), N, "A has each once");
    let _ = a.kill().await;
    b.stop().await;
}

/// The same crash seen from the peer, which counts what it is sent: after
/// the restart the feeder offers again only what it had not saved as
/// answered, by CHECK, so no article the peer took is sent to it a second
/// time, and none is offered more than twice.
#[tokio::test]
async fn a_feeder_killed_mid_feed_sends_no_article_the_peer_took_again() {
    const N: usize = 300;
    // 10 ms over each TAKETHIS: the feed is still going when A is killed.
    let fake = FakePeer::start(Fault::Slow, 10, HashSet::new()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::binary_config(
        dir.path(),
        "a",
        &format!(
            "[[peer]]\nname = \"b\"\npath_identity = \"b.test\"\naddress = \"{}\"\n",
            fake.addr
        ),
    );
    let (mut a, addr) = common::spawn_binary(BIN, &config).await;
    let mut poster = reader(addr).await;
    let mut ids = Vec::new();
    for i in 0..N {
        let status = poster
            .post(&article("local.test", &format!("kill {i}"), "x\r\n"))
            .await;
        ids.push(posted_id(&status));
    }
    eventually("the feed under way", DEADLINE, || async {
        fake.accepted().len() >= 30
    })
    .await;
    a.start_kill().expect("SIGKILL");
    tokio::time::timeout(DEADLINE, a.wait())
        .await
        .expect("died in time")
        .expect("wait");
    let taken = fake.accepted().len();
    assert!(taken < N, "the feed was over before the kill");

    let (mut a, _) = common::spawn_binary(BIN, &config).await;
    every_article_reaches_it_once(&fake, &ids, Duration::from_secs(20)).await;
    {
        let state = fake.state.lock().unwrap();
        for id in &ids {
            let sent = state.takethis.get(id).copied().unwrap_or(0);
            let offered = state.checks.get(id).copied().unwrap_or(0);
            assert_eq!(sent, 1, "{id} sent {sent} times");
            assert!(offered <= 2, "{id} offered {offered} times");
        }
        let again = state.checks.values().filter(|&&n| n == 2).count();
        eprintln!("crash: the peer had {taken} of {N}; {again} offered a second time");
    }
    let _ = a.kill().await;
}

/// A peer that finds one message-id invalid (501 to its CHECK) must not
/// hold up the rest of the feed: that article is rejected for this peer,
/// every other one gets there once, and the connection is kept.
#[tokio::test]
async fn an_article_the_peer_answers_501_does_not_hold_up_the_feed() {
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let ids = post_many(&a, 20, "choke").await;
    let poison: HashSet<String> = [ids[5].clone()].into();
    let fake = FakePeer::start(Fault::Choke, 0, poison).await;
    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), quick());
    let others: Vec<String> = ids.iter().filter(|id| **id != ids[5]).cloned().collect();
    every_article_reaches_it_once(&fake, &others, Duration::from_secs(10)).await;
    let state = a.server().store().peer_state("fake").await.expect("state");
    assert_eq!(state.accepted, 19);
    assert_eq!(state.rejected, 1);
    assert_eq!(fake.state.lock().unwrap().connections.len(), 1);
    feeder.stop().await;
    a.stop().await;
}

/// A peer that hangs up whenever it is sent one particular article must
/// not hold up the rest: the others get there once each; that one is
/// offered again later (and the operator sees the error).
#[tokio::test]
async fn an_article_the_peer_hangs_up_on_does_not_hold_up_the_feed() {
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let ids = post_many(&a, 20, "hangup").await;
    let poison: HashSet<String> = [ids[5].clone()].into();
    let fake = FakePeer::start(Fault::HangUp, 0, poison).await;
    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), quick());
    let others: Vec<String> = ids.iter().filter(|id| **id != ids[5]).cloned().collect();
    every_article_reaches_it_once(&fake, &others, Duration::from_secs(10)).await;
    let state = a.server().store().peer_state("fake").await.expect("state");
    assert_eq!(state.accepted, 19);
    assert!(state.last_error.is_some());
    let (backlog, _) = a
        .server()
        .store()
        .peer_backlog("fake", state.cursor)
        .await
        .expect("backlog");
    assert_eq!(backlog, 1, "the one it hangs up on waits for a retry");
    feeder.stop().await;
    a.stop().await;
}

/// A peer that offers no streaming is fed with IHAVE: a hang-up after an
/// article (before its answer) and a 436 cost nothing but a later offer;
/// every article gets there once.
#[tokio::test]
async fn an_ihave_peer_that_hangs_up_or_defers_gets_everything_once() {
    let a = node("a", free_port(), vec![peer("fake", None, "*")], &[]).await;
    a.server().store().peer_state("fake").await.expect("state");
    let ids = post_many(&a, 20, "ihave").await;
    let defer: HashSet<String> = ids.iter().skip(1).step_by(4).cloned().collect();
    let fake = FakePeer::start(Fault::IhaveOnly, 1, defer.clone()).await;
    let feeder = TestFeeder::start(&a, peer("fake", Some(fake.addr), "*"), quick());
    every_article_reaches_it_once(&fake, &ids, Duration::from_secs(10)).await;
    let state = a.server().store().peer_state("fake").await.expect("state");
    assert_eq!(state.accepted, 20);
    assert_eq!(state.deferred, defer.len() as i64);
    assert!(state.last_error.is_some());
    assert_eq!(fake.state.lock().unwrap().connections.len(), 2);
    feeder.stop().await;
    a.stop().await;
}
