//! Bad input never hurts the server or other clients: every mistake is an
//! answer, a misbehaving client costs only its own connection, and nothing
//! half-sent is ever stored (RFC 3977 §3.1, DESIGN.md "The wire").

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestServer, article, posted_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The three-digit code of a status line.
fn code(status: &str) -> &str {
    status.get(..3).unwrap_or(status)
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 24) as u8
    }
}

/// Asserts that `c` is still in step: DATE gets its 111.
async fn assert_in_step(c: &mut Client) {
    let status = c.cmd("DATE").await;
    assert_eq!(code(&status), "111", "{status}");
}

// ---- line framing (RFC 3977 §3.1: 512 octets) ------------------------------

#[tokio::test]
async fn a_command_line_over_512_octets_is_501_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let long = format!("GROUP {}", "x".repeat(600));
    assert_eq!(code(&c.cmd(&long).await), "501");
    assert_in_step(&mut c).await;
    // Far longer than any buffer: still one answer, still in step.
    let huge = format!("LIST ACTIVE {}", "y".repeat(200_000));
    assert_eq!(code(&c.cmd(&huge).await), "501");
    assert_in_step(&mut c).await;
    server.stop().await;
}

#[tokio::test]
async fn a_command_line_of_exactly_512_octets_is_parsed_and_513_is_not() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    // "XPAT Subject 1- " then a pattern: parsed, so 412 (no group selected).
    let head = "XPAT Subject 1- ";
    let fits = format!("{head}{}", "*".repeat(512 - 2 - head.len()));
    assert_eq!(fits.len() + 2, 512);
    assert_eq!(code(&c.cmd(&fits).await), "412");
    let over = format!("{fits}*");
    assert_eq!(code(&c.cmd(&over).await), "501");
    assert_in_step(&mut c).await;
    server.stop().await;
}

#[tokio::test]
async fn garbage_bytes_get_500_or_501_and_other_clients_are_served() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut data = Vec::new();
    let mut lines = 0;
    for i in 0..200 {
        let len = (noise.next() % 120) as usize;
        let mut line: Vec<u8> = (0..len)
            .map(|_| noise.byte())
            .filter(|&b| b != b'\n')
            .collect();
        // Make sure the nasty octets are there, not just likely.
        match i % 4 {
            0 => line.insert(0, 0),
            1 => line.push(0xff),
            2 => line.insert(line.len() / 2, b'\r'),
            _ => {}
        }
        data.extend_from_slice(&line);
        data.extend_from_slice(b"\r\n");
        lines += 1;
    }
    // And some that look nearly like commands.
    for line in [
        &b"GROUP local.\x00test"[..],
        b"ARTICLE <a\xff@b>",
        b"LIST ACTIVE \x01",
        b"\r\r\r",
        b"HEAD\x00",
    ] {
        data.extend_from_slice(line);
        data.extend_from_slice(b"\r\n");
        lines += 1;
    }
    c.send(&data).await;
    for n in 0..lines {
        let status = c.line().await;
        assert!(
            matches!(code(&status), "500" | "501"),
            "line {n} answered {status}"
        );
    }
    assert_in_step(&mut c).await;

    let mut other = server.client().await;
    assert_eq!(code(&other.greeting), "200");
    assert_eq!(other.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    server.stop().await;
}

// ---- POST cut short ------------------------------------------------------------

#[tokio::test]
async fn a_client_that_disconnects_during_post_stores_nothing() {
    let server = TestServer::start().await;
    let mut poster = server.client().await;
    assert_eq!(code(&poster.cmd("POST").await), "340");
    poster
        .send(
            b"Message-ID: <cut.short@example.com>\r\nFrom: A <a@example.com>\r\n\
              Newsgroups: local.test\r\nSubject: half\r\n\r\nthe body, but no dot\r\n",
        )
        .await;
    drop(poster);

    let mut reader = server.client().await;
    // Give the server time to see the end of stream, then look.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(reader.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    assert_eq!(
        code(&reader.cmd("STAT <cut.short@example.com>").await),
        "430"
    );
    // The message-id was never taken: the whole article can be posted now.
    let raw = "Message-ID: <cut.short@example.com>\r\nFrom: A <a@example.com>\r\n\
               Newsgroups: local.test\r\nSubject: whole\r\n\r\nbody\r\n";
    assert_eq!(code(&reader.post(raw).await), "240");
    assert_eq!(reader.cmd("GROUP local.test").await, "211 1 1 1 local.test");
    server.stop().await;
}

#[tokio::test]
async fn a_post_that_stalls_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(|c| c.limits.idle_timeout_secs = 1).await;
    let mut poster = server.client().await;
    assert_eq!(code(&poster.cmd("POST").await), "340");
    poster
        .send(b"From: A <a@example.com>\r\nNewsgroups: local.test\r\nSubject: slow\r\n")
        .await;
    let started = Instant::now();
    // The server gives up on the article: a 400 then end of stream, or just
    // end of stream; never a hang.
    let rest = poster.read_to_end().await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "still open after {waited:?}: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        rest.is_empty() || rest.starts_with(b"400 "),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    let mut reader = server.client().await;
    assert_eq!(reader.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_400() {
    let server = TestServer::start_with(|c| c.limits.idle_timeout_secs = 1).await;
    let mut c = server.client().await;
    assert_in_step(&mut c).await;
    let status = c.line().await;
    assert_eq!(code(&status), "400", "{status}");
    assert_eq!(c.try_line().await, None);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_a_stalled_post() {
    let server = TestServer::start().await;
    let mut poster = server.client().await;
    assert_eq!(code(&poster.cmd("POST").await), "340");
    poster
        .send(b"From: A <a@example.com>\r\nNewsgroups: local.test\r\n")
        .await;
    // Let the session start reading the article.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (dir, config) = server.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    let rest = poster.read_to_end().await;
    assert!(
        rest.is_empty() || rest.starts_with(b"400 "),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    // And the half article was not stored.
    let server = TestServer::start_in(dir, config).await;
    let mut c = server.client().await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    server.stop().await;
}

// ---- pipelining (RFC 3977 §3.5) ----------------------------------------------

#[tokio::test]
async fn a_thousand_pipelined_commands_get_a_thousand_answers_in_order() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let id = posted_id(&c.post(&article("local.test", "one", "b\r\n")).await);
    let commands = ["GROUP local.test", "STAT 1", "DATE", "STAT 2", "GROUP nope"];
    let expected = ["211", "223", "111", "423", "411"];
    let mut data = Vec::new();
    for i in 0..1000 {
        data.extend_from_slice(commands[i % commands.len()].as_bytes());
        data.extend_from_slice(b"\r\n");
    }
    c.send(&data).await;
    for i in 0..1000 {
        let status = c.line().await;
        let want = expected[i % expected.len()];
        assert_eq!(code(&status), want, "answer {i}: {status}");
        if want == "223" {
            assert_eq!(status, format!("223 1 {id}"));
        }
    }
    assert_in_step(&mut c).await;
    server.stop().await;
}

#[tokio::test]
async fn pipelined_commands_after_a_post_are_answered_after_it() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    // POST, its article and the next commands in one write: the server must
    // not read the commands as part of the article, nor the article as
    // commands (RFC 3977 §3.5 allows pipelining after the 340 is awaited,
    // but a robust server copes with it anyway).
    let data = b"POST\r\nFrom: A <a@example.com>\r\nNewsgroups: local.test\r\n\
        Subject: piped\r\n\r\nbody\r\n.\r\nGROUP local.test\r\nDATE\r\n";
    c.send(data).await;
    assert_eq!(code(&c.line().await), "340");
    assert_eq!(code(&c.line().await), "240");
    assert_eq!(c.line().await, "211 1 1 1 local.test");
    assert_eq!(code(&c.line().await), "111");
    server.stop().await;
}

// ---- a client that never reads ------------------------------------------------

/// Connects and sends at least `commands` HELPs, then more until the server
/// has stopped reading (a write times out: its answers fill every buffer
/// between us), without ever reading an answer. Returns the open socket.
async fn flood_without_reading(addr: std::net::SocketAddr, commands: usize) -> TcpStream {
    let mut hog = TcpStream::connect(addr).await.expect("connect");
    let chunk = "HELP\r\n".repeat(1000);
    // A bound, so this cannot spin forever if the server reads everything.
    for sent in 0..1000 {
        let write = hog.write_all(chunk.as_bytes());
        match tokio::time::timeout(Duration::from_millis(200), write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the server dropped a client that was sending: {e}"),
            // Pushed back: the server is stuck writing to us.
            Err(_) if (sent + 1) * 1000 >= commands => return hog,
            Err(_) => {}
        }
    }
    panic!("the server never stopped reading from a client that never reads");
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_slow_down_others() {
    let server = TestServer::start().await;
    let hog = flood_without_reading(server.addr, 20_000).await;

    let mut c = server.client().await;
    for _ in 0..5 {
        let started = Instant::now();
        assert_in_step(&mut c).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "DATE took {:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    let (_, list) = c.cmd_block("LIST ACTIVE", "215").await;
    assert_eq!(list.len(), 5);
    assert!(started.elapsed() < Duration::from_secs(2));

    drop(hog);
    // The server is still up for newcomers.
    let mut late = server.client().await;
    assert_eq!(late.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_is_not_held_up_by_a_client_that_never_reads() {
    let server = TestServer::start().await;
    let hog = flood_without_reading(server.addr, 20_000).await;
    let started = Instant::now();
    server.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    drop(hog);
}

// ---- long lines in an article block --------------------------------------------

#[tokio::test]
async fn an_article_with_a_200_kb_line_posts_and_is_served_back_whole() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    // A stuffed dot at its start, so un-stuffing must work across reads too.
    let long = format!(".{}", "z".repeat(200 * 1024));
    let body = format!("short\r\n{long}\r\nafter\r\n");
    let status = c.post(&article("local.test", "long line", &body)).await;
    let id = posted_id(&status);
    assert_in_step(&mut c).await;
    assert_eq!(c.cmd(&format!("BODY {id}")).await, format!("222 0 {id}"));
    assert_eq!(c.block_bytes().await, body.as_bytes());
    server.stop().await;
}

#[tokio::test]
async fn an_article_with_a_line_over_the_size_limit_is_441_and_the_session_goes_on() {
    let server = TestServer::start_with(|c| c.limits.max_article_size = 64 * 1024).await;
    let mut c = server.client().await;
    let body = format!("{}\r\n.\r\n", "q".repeat(200 * 1024));
    let status = c.post(&article("local.test", "too long", &body)).await;
    assert_eq!(code(&status), "441", "{status}");
    assert_in_step(&mut c).await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 0 1 0 local.test");
    server.stop().await;
}

// ---- many posters at once ----------------------------------------------------

#[tokio::test]
async fn concurrent_posters_get_gapless_numbers_and_240_only_after_commit() {
    const POSTERS: usize = 8;
    const EACH: usize = 25;
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut tasks = Vec::new();
    for p in 0..POSTERS {
        tasks.push(tokio::spawn(async move {
            let mut poster = Client::connect(addr).await;
            let mut checker = Client::connect(addr).await;
            let mut ids = Vec::new();
            for i in 0..EACH {
                let raw = article("local.test", &format!("poster {p} post {i}"), "b\r\n");
                let id = posted_id(&poster.post(&raw).await);
                // Acknowledged means committed: another connection reads it now.
                let (status, whole) = checker.cmd_block(&format!("ARTICLE {id}"), "220").await;
                assert_eq!(status, format!("220 0 {id}"), "right after its 240");
                assert!(whole.contains(&format!("Subject: poster {p} post {i}")));
                ids.push(id);
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("poster task"));
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), POSTERS * EACH, "message-ids are unique");

    let mut c = server.client().await;
    let total = POSTERS * EACH;
    let (status, numbers) = c.cmd_block("LISTGROUP local.test", "211").await;
    assert!(
        status.starts_with(&format!("211 {total} 1 {total} local.test")),
        "{status}"
    );
    let want: Vec<String> = (1..=total).map(|n| n.to_string()).collect();
    assert_eq!(numbers, want);
    // Every number names a distinct one of the posted articles.
    let mut seen = Vec::new();
    for n in 1..=total {
        let status = c.cmd(&format!("STAT {n}")).await;
        let id = status.split(' ').nth(2).expect("message-id").to_owned();
        seen.push(id);
    }
    seen.sort();
    assert_eq!(seen, all);
    server.stop().await;
}

// ---- connection limit ----------------------------------------------------------

#[tokio::test]
async fn a_connection_over_the_limit_gets_400_and_the_others_are_served() {
    let server = TestServer::start_with(|c| c.limits.max_connections = 2).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    let mut refused = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut refused))
        .await
        .expect("refused in time")
        .expect("read");
    assert!(
        refused.starts_with(b"400 "),
        "{:?}",
        String::from_utf8_lossy(&refused)
    );
    assert_in_step(&mut a).await;
    assert_in_step(&mut b).await;
    // A slot freed is a slot again.
    a.cmd("QUIT").await;
    drop(a);
    let mut again = None;
    for _ in 0..50 {
        let c = server.client().await;
        if code(&c.greeting) == "200" {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = again.expect("a free slot after QUIT");
    assert_in_step(&mut again).await;
    server.stop().await;
}

#[tokio::test]
async fn the_same_message_id_posted_at_once_on_two_connections_is_taken_once() {
    let server = TestServer::start().await;
    let raw = "Message-ID: <race@example.com>\r\nFrom: A <a@example.com>\r\n\
               Newsgroups: local.test\r\nSubject: race\r\n\r\nbody\r\n";
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            c.post(raw).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("poster"));
    }
    let taken = answers.iter().filter(|s| code(s) == "240").count();
    let refused = answers.iter().filter(|s| code(s) == "441").count();
    assert_eq!((taken, refused), (1, 5), "{answers:?}");
    let mut c = server.client().await;
    assert_eq!(c.cmd("GROUP local.test").await, "211 1 1 1 local.test");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_says_400_to_a_connected_client() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_in_step(&mut c).await;
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let status = c.line().await;
    assert_eq!(code(&status), "400", "{status}");
    assert_eq!(c.try_line().await, None);
}

#[tokio::test]
async fn an_article_with_nul_and_bare_cr_octets_is_kept_exactly_or_refused() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let body: &[u8] = b"nul \x00 here\r\nbare \r cr\r\nend\r\n";
    let mut data =
        b"From: A <a@example.com>\r\nNewsgroups: local.test\r\nSubject: odd\r\n\r\n".to_vec();
    data.extend_from_slice(body);
    data.extend_from_slice(b".\r\n");
    assert_eq!(code(&c.cmd("POST").await), "340");
    c.send(&data).await;
    let status = c.line().await;
    match code(&status) {
        "240" => {
            let id = posted_id(&status);
            assert_eq!(c.cmd(&format!("BODY {id}")).await, format!("222 0 {id}"));
            assert_eq!(c.block_bytes().await, body);
        }
        "441" => {}
        _ => panic!("{status}"),
    }
    assert_in_step(&mut c).await;
    server.stop().await;
}

#[tokio::test]
async fn a_hundred_clients_at_once_are_all_served() {
    let server = TestServer::start().await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            assert_eq!(code(&c.greeting), "200");
            assert_eq!(c.cmd("GROUP local.test").await, "211 0 1 0 local.test");
            let (_, list) = c.cmd_block("LIST ACTIVE", "215").await;
            assert_eq!(list.len(), 5);
            assert_eq!(code(&c.cmd("QUIT").await), "205");
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    server.stop().await;
}
