//! COMPRESS DEFLATE (RFC 8054) over real TCP: the capability, 206 and the
//! compressed session after it (reading, posting, big answers), the codes
//! for every refusal (501, 502, 503, 403, 480), what a compressed session
//! may no longer do (STARTTLS, AUTHINFO), corrupt input, the limit on
//! compressing connections, and Python's zlib (the C library) as the
//! client's compressor.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Client, TestServer, article, posted_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn capabilities(c: &mut Client) -> Vec<String> {
    let (status, caps) = c.cmd_block("CAPABILITIES", "101").await;
    assert!(status.starts_with("101"), "{status}");
    caps
}

#[tokio::test]
async fn a_compressed_session_reads_and_posts_like_a_plain_one() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let caps = capabilities(&mut c).await;
    assert!(caps.iter().any(|l| l == "COMPRESS DEFLATE"), "{caps:?}");
    let mut z = c.compress().await;

    // RFC 8054 §2.2.2: no COMPRESS and no arguments to AUTHINFO once on.
    let (status, caps) = (z.cmd("CAPABILITIES").await, z.block().await);
    assert!(status.starts_with("101"), "{status}");
    assert!(!caps.iter().any(|l| l.starts_with("COMPRESS")), "{caps:?}");
    assert!(caps.iter().any(|l| l == "AUTHINFO"), "{caps:?}");
    assert!(caps.iter().any(|l| l == "READER"), "{caps:?}");

    // A post through the compressed stream, with a dot-stuffed line and
    // 8-bit text, comes back byte for byte.
    let body = "Hello through DEFLATE.\r\n.a line that starts with a dot\r\nd\u{e9}j\u{e0} vu\r\n";
    let text = article("local.test", "compressed post", body);
    let status = z.post(&text).await;
    let id = posted_id(&status);
    assert!(z.cmd("GROUP local.test").await.starts_with("211 1 1 1 "));
    let status = z.cmd(&format!("BODY {id}")).await;
    assert!(status.starts_with("222 "), "{status}");
    assert_eq!(z.block_bytes().await, body.as_bytes());

    // Many answers in one burst, and a large one, all inflate in order.
    for i in 0..40 {
        let s = z
            .post(&article(
                "local.test",
                &format!("bulk {i}"),
                &"text ".repeat(400),
            ))
            .await;
        assert!(s.starts_with("240 "), "{s}");
    }
    let mut burst = String::new();
    for n in 1..=41 {
        burst.push_str(&format!("STAT {n}\r\n"));
    }
    z.send(burst.as_bytes()).await;
    for n in 1..=41 {
        let s = z.line().await;
        assert!(s.starts_with(&format!("223 {n} ")), "{s}");
    }
    let before = z.raw_received;
    let status = z.cmd("OVER 1-41").await;
    assert!(status.starts_with("224"), "{status}");
    let over = z.block().await;
    assert_eq!(over.len(), 41);
    assert!(over[1].contains("\tbulk 0\t"), "{}", over[1]);
    let (_, all) = (z.cmd("ARTICLE 41").await, z.block_bytes().await);
    assert!(all.windows(5).filter(|w| w == b"text ").count() == 400);
    // The repetitive text travelled compressed: far fewer octets than the
    // ~2 KiB article and the overview lines.
    assert!(
        z.raw_received - before < 2000,
        "{} compressed octets",
        z.raw_received - before
    );

    // No second layer, no TLS under it, no credentials through it (502).
    assert!(z.cmd("COMPRESS DEFLATE").await.starts_with("502 "));
    assert!(z.cmd("STARTTLS").await.starts_with("502 "));
    assert!(z.cmd("AUTHINFO USER alice").await.starts_with("502 "));
    assert!(
        z.cmd("AUTHINFO SASL PLAIN AGFsaWNlAHMzY3JldCE=")
            .await
            .starts_with("502 ")
    );
    assert!(z.cmd("QUIT").await.starts_with("205 "));
    assert!(z.closed_by_server().await);
}

#[tokio::test]
async fn bad_compress_commands_get_their_codes_and_the_session_stays_plain() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    // §2.2.2: an algorithm we lack is 503; one the grammar refuses, 501.
    assert!(c.cmd("COMPRESS SHRINK").await.starts_with("503 "));
    assert!(c.cmd("COMPRESS deflate").await.starts_with("501 "));
    assert!(c.cmd("COMPRESS").await.starts_with("501 "));
    assert!(c.cmd("COMPRESS DEFLATE X").await.starts_with("501 "));
    assert!(c.cmd("DATE").await.starts_with("111 "));
    // Still uncompressed: it can still be switched on.
    let mut z = c.compress().await;
    assert!(z.cmd("DATE").await.starts_with("111 "));
}

#[tokio::test]
async fn corrupt_compressed_input_closes_only_that_connection() {
    let server = TestServer::start().await;
    let mut z = server.client().await.compress().await;
    assert!(z.cmd("MODE READER").await.starts_with("20"));
    // A client that goes on in clear: not DEFLATE data (§2.2.2: close).
    z.stream_mut()
        .write_all(b"GROUP local.test\r\n\xff\xfe\xfd\xfc")
        .await
        .expect("send");
    assert!(z.closed_by_server().await);
    let mut other = server.client().await;
    assert!(other.cmd("GROUP local.test").await.starts_with("211 "));
    let mut again = server.client().await.compress().await;
    assert!(again.cmd("DATE").await.starts_with("111 "));
}

#[tokio::test]
async fn compression_is_limited_to_max_compressed_connections() {
    let server = TestServer::start_with(|c| c.limits.max_compressed_connections = 1).await;
    let mut first = server.client().await.compress().await;
    assert!(first.cmd("DATE").await.starts_with("111 "));
    // The second is told 403 and carries on uncompressed.
    let mut second = server.client().await;
    assert!(second.cmd("COMPRESS DEFLATE").await.starts_with("403 "));
    assert!(second.cmd("DATE").await.starts_with("111 "));
    // Once the first has gone, its place is free again.
    assert!(first.cmd("QUIT").await.starts_with("205 "));
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = second.cmd("COMPRESS DEFLATE").await;
        if status.starts_with("206 ") {
            break;
        }
        assert!(status.starts_with("403 "), "{status}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn compress_can_be_turned_off() {
    let server = TestServer::start_with(|c| c.limits.max_compressed_connections = 0).await;
    let mut c = server.client().await;
    let caps = capabilities(&mut c).await;
    assert!(!caps.iter().any(|l| l.starts_with("COMPRESS")), "{caps:?}");
    assert!(c.cmd("COMPRESS DEFLATE").await.starts_with("502 "));
    assert!(c.cmd("DATE").await.starts_with("111 "));
}

#[tokio::test]
async fn where_login_is_required_compress_waits_for_it() {
    let server = TestServer::start_with(|c| c.auth.required = true).await;
    server.add_user("alice", "s3cret!").await;
    let mut c = server.client().await;
    // §7: log in first, then compress; before login COMPRESS is 480.
    assert!(c.cmd("COMPRESS DEFLATE").await.starts_with("480 "));
    assert!(c.cmd("AUTHINFO USER alice").await.starts_with("381 "));
    assert!(c.cmd("AUTHINFO PASS s3cret!").await.starts_with("281 "));
    let mut z = c.compress().await;
    assert!(z.cmd("GROUP local.general").await.starts_with("211 "));
    let status = z.cmd("CAPABILITIES").await;
    assert!(status.starts_with("101"));
    let caps = z.block().await;
    assert!(!caps.iter().any(|l| l.starts_with("AUTHINFO")), "{caps:?}");
}

/// Python's zlib is the C zlib that most newsreaders link: it must read
/// what we send and we must read what it sends.
#[tokio::test]
async fn zlib_as_a_client_reads_and_posts_compressed() {
    let server = TestServer::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/compress.py");
    common::python([
        script.to_owned(),
        server.addr.ip().to_string(),
        server.addr.port().to_string(),
    ])
    .await;
}

/// A relay on loopback that forwards to `to` and counts the octets it
/// carries from the connecting side.
async fn counting_relay(to: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let upstream = Arc::new(AtomicU64::new(0));
    let counted = upstream.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(to).await else {
                continue;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let (mut ir, mut iw) = inbound.into_split();
                let (mut or, mut ow) = outbound.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = ir.read(&mut buf).await {
                        if n == 0 || ow.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        counted.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let _ = ow.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut or, &mut iw).await;
                    let _ = iw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (addr, upstream)
}

/// A peer with `compress = true` is fed through COMPRESS DEFLATE: every
/// article arrives byte for byte, in a fraction of the octets.
#[tokio::test]
async fn a_feed_to_a_peer_with_compress_on_arrives_whole_in_fewer_octets() {
    use common::{free_port, node, peer, reader};
    const N: usize = 40;
    let b = node("b", free_port(), vec![peer("a", None, "*")], &[]).await;
    let (relay, upstream) = counting_relay(b.addr).await;
    let mut to_b = peer("b", Some(relay), "*");
    to_b.compress = true;
    let a = node("a", free_port(), vec![to_b], &[]).await;
    let mut poster = reader(a.addr).await;
    let mut ids = Vec::new();
    let mut plain_octets = 0;
    for i in 0..N {
        let body = format!("Article {i} of a compressed feed.\r\n").repeat(60);
        plain_octets += body.len();
        ids.push((
            posted_id(
                &poster
                    .post(&article("local.test", &format!("z {i}"), &body))
                    .await,
            ),
            body,
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut rb = reader(b.addr).await;
    for (id, body) in &ids {
        loop {
            let status = rb.cmd(&format!("BODY {id}")).await;
            if status.starts_with("222") {
                assert_eq!(rb.block_bytes().await, body.as_bytes(), "{id}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} never reached B"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let sent = upstream.load(Ordering::Relaxed);
    assert!(
        (sent as usize) < plain_octets / 3,
        "{sent} octets on the wire for {plain_octets} of bodies"
    );
}
