//! TLS (RFC 4642, RFC 8143) over real TCP and real TLS: NNTPS on its own
//! port, STARTTLS on the plain one, what a session forgets and what it may
//! do once encrypted, clients that speak garbage or plain text where TLS
//! belongs, a certificate renewed by reload, a feed over NNTPS, and
//! Python's nntplib (starttls(), login(), NNTP_SSL) as a real client.
//!
//! Certificates are generated in the test (rcgen), for `localhost` and
//! 127.0.0.1; clients trust exactly the generated ones.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{DEADLINE, TestServer, article, posted_id};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tempfile::TempDir;
use tidings::config::Config;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A generated certificate and its key, in PEM and DER.
struct Cert {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn make_cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    Cert {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
        der: ck.cert.der().clone(),
    }
}

/// Where the server's certificate and key live; tests overwrite them to
/// renew the certificate.
struct CertFiles {
    dir: TempDir,
    cert: PathBuf,
    key: PathBuf,
}

impl CertFiles {
    fn new(c: &Cert) -> CertFiles {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = CertFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            dir,
        };
        files.write(c);
        files
    }

    fn write(&self, c: &Cert) {
        std::fs::write(&self.cert, &c.cert_pem).expect("write cert");
        std::fs::write(&self.key, &c.key_pem).expect("write key");
    }

    /// The certificate alone, for a client that trusts it (Python).
    fn ca_path(&self) -> &Path {
        &self.cert
    }

    fn configure(&self, c: &mut Config) {
        c.tls.certificate = Some(self.cert.clone());
        c.tls.key = Some(self.key.clone());
        c.tls.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    }
}

/// A server with TLS on `cert`, then `f`'s adjustments, and user alice.
async fn tls_server(files: &CertFiles, f: impl FnOnce(&mut Config)) -> TestServer {
    let server = TestServer::start_with(|c| {
        files.configure(c);
        f(c);
    })
    .await;
    server.add_user("alice", "s3cret!").await;
    server
}

/// A client configuration trusting exactly `certs`.
fn trusting(certs: &[&Cert]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c.der.clone()).expect("root");
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    Arc::new(config)
}

async fn handshake(config: &Arc<ClientConfig>, tcp: TcpStream) -> TlsStream<TcpStream> {
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(
        DEADLINE,
        TlsConnector::from(config.clone()).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake")
}

async fn tcp(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// A line-level client on any stream (plain or TLS).
struct Nntp<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Nntp<S> {
    /// Wraps a connected stream and reads the greeting.
    async fn greeted(stream: S) -> (Nntp<S>, String) {
        let mut c = Nntp {
            io: BufReader::new(stream),
        };
        let greeting = c.line().await;
        (c, greeting)
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.expect("send");
        self.io.get_mut().flush().await.expect("flush");
    }

    async fn try_line(&mut self) -> Option<String> {
        common::read_line(&mut self.io).await
    }

    async fn line(&mut self) -> String {
        self.try_line().await.expect("a line before end of stream")
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.line().await
    }

    async fn block(&mut self) -> Vec<String> {
        common::read_block_lines(&mut self.io).await
    }

    async fn capabilities(&mut self) -> Vec<String> {
        let status = self.cmd("CAPABILITIES").await;
        assert!(status.starts_with("101"), "{status}");
        self.block().await
    }

    async fn post(&mut self, text: &str) -> String {
        let status = self.cmd("POST").await;
        assert!(status.starts_with("340"), "POST answered {status}");
        let mut data = Vec::new();
        tidings::wire::dot::stuff(text.as_bytes(), &mut data);
        self.send(&data).await;
        self.line().await
    }

    /// Reads until the server closes (within the deadline); true when it did.
    async fn closed_by_server(&mut self) -> bool {
        let mut rest = Vec::new();
        // End of stream or a reset both count; only the deadline does not.
        tokio::time::timeout(DEADLINE, self.io.read_to_end(&mut rest))
            .await
            .is_ok()
    }

    /// The stream back, for STARTTLS: nothing may be buffered past 382.
    fn into_inner(self) -> S {
        assert!(self.io.buffer().is_empty(), "bytes after 382");
        self.io.into_inner()
    }
}

/// A plain connection that has done STARTTLS.
async fn starttls(addr: SocketAddr, config: &Arc<ClientConfig>) -> Nntp<TlsStream<TcpStream>> {
    let (mut c, greeting) = Nntp::greeted(tcp(addr).await).await;
    assert!(greeting.starts_with("200"), "{greeting}");
    assert!(c.cmd("STARTTLS").await.starts_with("382"));
    Nntp {
        io: BufReader::new(handshake(config, c.into_inner()).await),
    }
}

/// An NNTPS connection, greeted.
async fn nntps(addr: SocketAddr, config: &Arc<ClientConfig>) -> Nntp<TlsStream<TcpStream>> {
    let (c, greeting) = Nntp::greeted(handshake(config, tcp(addr).await).await).await;
    assert!(greeting.starts_with("200"), "{greeting}");
    c
}

/// The certificate the server presented on `c`.
fn presented(c: &Nntp<TlsStream<TcpStream>>) -> CertificateDer<'static> {
    let (_, conn) = c.io.get_ref().get_ref();
    conn.peer_certificates().expect("certificates")[0].clone()
}

fn code(line: &str) -> &str {
    line.get(..3).unwrap_or(line)
}

#[tokio::test]
async fn nntps_greets_over_tls_and_serves_group_post_and_article() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    let server = tls_server(&files, |_| {}).await;
    let mut c = nntps(server.tls_addr(), &trusting(&[&cert])).await;
    let caps = c.capabilities().await;
    assert!(!caps.contains(&"STARTTLS".to_owned()), "{caps:?}");
    assert!(caps.contains(&"AUTHINFO USER SASL".to_owned()), "{caps:?}");
    assert_eq!(code(&c.cmd("GROUP local.test").await), "211");
    let status = c
        .post(&article("local.test", "over tls", "sealed\r\n"))
        .await;
    let id = posted_id(&status);
    assert_eq!(code(&c.cmd("GROUP local.test").await), "211");
    let status = c.cmd("ARTICLE 1").await;
    assert!(status.starts_with("220 1 "), "{status}");
    assert!(status.contains(&id), "{status}");
    let lines = c.block().await;
    assert!(lines.contains(&"sealed".to_owned()), "{lines:?}");
    assert_eq!(code(&c.cmd("QUIT").await), "205");
    server.stop().await;
}

#[tokio::test]
async fn starttls_upgrades_and_a_password_then_travels_from_anywhere() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    // No address may send a password in clear.
    let server = tls_server(&files, |c| c.auth.plaintext_from = Vec::new()).await;
    let (mut c, _) = Nntp::greeted(tcp(server.addr).await).await;
    let caps = c.capabilities().await;
    assert!(caps.contains(&"STARTTLS".to_owned()), "{caps:?}");
    assert!(caps.contains(&"AUTHINFO".to_owned()), "{caps:?}");
    assert_eq!(code(&c.cmd("AUTHINFO USER alice").await), "483");
    assert_eq!(code(&c.cmd("GROUP local.test").await), "211");

    assert_eq!(code(&c.cmd("STARTTLS").await), "382");
    let mut c = Nntp {
        io: BufReader::new(handshake(&trusting(&[&cert]), c.into_inner()).await),
    };
    assert_eq!(presented(&c), cert.der);
    // RFC 4642 §2.2.2: no new greeting; the client asks for CAPABILITIES
    // again, and the session has forgotten the group chosen in clear.
    let caps = c.capabilities().await;
    assert!(!caps.contains(&"STARTTLS".to_owned()), "{caps:?}");
    assert!(caps.contains(&"AUTHINFO USER SASL".to_owned()), "{caps:?}");
    assert_eq!(code(&c.cmd("NEXT").await), "412");
    assert_eq!(code(&c.cmd("STARTTLS").await), "502", "TLS is already on");
    assert_eq!(code(&c.cmd("AUTHINFO USER alice").await), "381");
    assert_eq!(code(&c.cmd("AUTHINFO PASS s3cret!").await), "281");
    assert_eq!(code(&c.cmd("GROUP local.test").await), "211");
    server.stop().await;
}

#[tokio::test]
async fn starttls_after_login_in_clear_is_502() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    let server = tls_server(&files, |_| {}).await;
    let (mut c, _) = Nntp::greeted(tcp(server.addr).await).await;
    assert_eq!(code(&c.cmd("AUTHINFO USER alice").await), "381");
    assert_eq!(code(&c.cmd("AUTHINFO PASS s3cret!").await), "281");
    let caps = c.capabilities().await;
    assert!(!caps.contains(&"STARTTLS".to_owned()), "{caps:?}");
    assert_eq!(code(&c.cmd("STARTTLS").await), "502");
    assert_eq!(code(&c.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn starttls_without_a_certificate_is_not_offered_and_is_502() {
    let server = TestServer::start().await;
    let (mut c, _) = Nntp::greeted(tcp(server.addr).await).await;
    let caps = c.capabilities().await;
    assert!(!caps.contains(&"STARTTLS".to_owned()), "{caps:?}");
    assert_eq!(code(&c.cmd("STARTTLS").await), "502");
    assert_eq!(code(&c.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn starttls_can_be_turned_off_while_nntps_stays() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    let server = tls_server(&files, |c| c.tls.starttls = false).await;
    let (mut c, _) = Nntp::greeted(tcp(server.addr).await).await;
    assert!(!c.capabilities().await.contains(&"STARTTLS".to_owned()));
    assert_eq!(code(&c.cmd("STARTTLS").await), "502");
    let mut t = nntps(server.tls_addr(), &trusting(&[&cert])).await;
    assert_eq!(code(&t.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn garbage_as_a_handshake_is_cut_off_and_others_are_served() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    let server = tls_server(&files, |_| {}).await;
    let config = trusting(&[&cert]);
    // Someone else is mid-session over TLS meanwhile.
    let mut other = nntps(server.tls_addr(), &config).await;

    for garbage in [
        b"GROUP local.test\r\n".to_vec(),
        b"\x16\x03\x01\xff\xff"
            .iter()
            .copied()
            .chain([0u8; 300])
            .collect(),
        (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ] {
        let mut s = tcp(server.tls_addr()).await;
        s.write_all(&garbage).await.expect("send");
        let mut bad = Nntp {
            io: BufReader::new(s),
        };
        assert!(bad.closed_by_server().await, "server kept a garbage client");
    }

    assert_eq!(code(&other.cmd("DATE").await), "111");
    let mut fresh = nntps(server.tls_addr(), &config).await;
    assert_eq!(code(&fresh.cmd("GROUP local.test").await), "211");
    let (mut plain, greeting) = Nntp::greeted(tcp(server.addr).await).await;
    assert!(greeting.starts_with("200"), "{greeting}");
    assert_eq!(code(&plain.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn a_silent_client_on_the_nntps_port_is_cut_off_after_the_handshake_timeout() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    let server = tls_server(&files, |c| c.tls.handshake_timeout_secs = 1).await;
    let mut silent = Nntp {
        io: BufReader::new(tcp(server.tls_addr()).await),
    };
    assert!(silent.closed_by_server().await);
    let mut c = nntps(server.tls_addr(), &trusting(&[&cert])).await;
    assert_eq!(code(&c.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn starttls_then_plain_text_is_cut_off_and_the_server_carries_on() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    let server = tls_server(&files, |_| {}).await;
    let (mut c, _) = Nntp::greeted(tcp(server.addr).await).await;
    assert_eq!(code(&c.cmd("STARTTLS").await), "382");
    c.send(b"GROUP local.test\r\nDATE\r\n").await;
    // No NNTP answer comes back in clear: at most a TLS alert, then close.
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, c.io.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .ok();
    let text = String::from_utf8_lossy(&rest);
    assert!(
        !text.contains("211") && !text.contains("111"),
        "answered plain text after STARTTLS: {text:?}"
    );

    let (mut d, _) = Nntp::greeted(tcp(server.addr).await).await;
    assert_eq!(code(&d.cmd("DATE").await), "111");
    server.stop().await;
}

#[tokio::test]
async fn commands_pipelined_after_starttls_are_discarded_not_run_inside_tls() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    let server = tls_server(&files, |_| {}).await;
    let (mut c, _) = Nntp::greeted(tcp(server.addr).await).await;
    // An injected command rides in the same packet as STARTTLS.
    c.send(b"STARTTLS\r\nGROUP local.test\r\n").await;
    assert_eq!(code(&c.line().await), "382");
    let mut c = Nntp {
        io: BufReader::new(handshake(&trusting(&[&cert]), c.into_inner()).await),
    };
    // Had GROUP been run inside TLS, its 211 would come first.
    assert_eq!(code(&c.cmd("DATE").await), "111");
    assert_eq!(code(&c.cmd("NEXT").await), "412");
    server.stop().await;
}

#[tokio::test]
async fn reload_presents_a_renewed_certificate_and_open_connections_carry_on() {
    let (a, b) = (make_cert(), make_cert());
    let files = CertFiles::new(&a);
    let mut server = tls_server(&files, |_| {}).await;
    let both = trusting(&[&a, &b]);
    let mut old_tls = nntps(server.tls_addr(), &both).await;
    assert_eq!(presented(&old_tls), a.der);
    let mut old_starttls = starttls(server.addr, &both).await;
    assert_eq!(presented(&old_starttls), a.der);
    assert_eq!(code(&old_tls.cmd("GROUP local.test").await), "211");

    files.write(&b);
    let config = server.config.clone();
    server.server_mut().reload(config.clone());

    let mut new_tls = nntps(server.tls_addr(), &both).await;
    assert_eq!(presented(&new_tls), b.der);
    let new_starttls = starttls(server.addr, &both).await;
    assert_eq!(presented(&new_starttls), b.der);
    assert_eq!(code(&new_tls.cmd("DATE").await), "111");
    // Open sessions keep their TLS session and their state (a group is
    // still selected: 420, not 412).
    assert_eq!(code(&old_tls.cmd("NEXT").await), "420");
    assert_eq!(code(&old_starttls.cmd("DATE").await), "111");

    // Unreadable files on reload: the running certificate stays.
    std::fs::write(&files.key, "not a key").expect("write");
    server.server_mut().reload(config);
    let mut still = nntps(server.tls_addr(), &both).await;
    assert_eq!(presented(&still), b.der);
    assert_eq!(code(&still.cmd("DATE").await), "111");
    server.stop().await;
}

/// Runs a Python script with `args`, asserting it exits 0.
async fn python(script: &str, args: &[String]) {
    let mut all = vec!["-c".to_owned(), script.to_owned()];
    all.extend_from_slice(args);
    common::python(all).await;
}

/// nntplib: STARTTLS then login on the plain port (where a password in
/// clear is refused), and NNTP_SSL on the NNTPS port.
#[tokio::test]
async fn nntplib_starttls_login_and_nntp_ssl() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    let server = tls_server(&files, |c| {
        c.auth.plaintext_from = Vec::new();
        c.auth.required = true;
    })
    .await;
    let script = r#"
import sys, ssl, warnings
warnings.simplefilter("ignore", DeprecationWarning)
import nntplib
host, port, tls_port, ca = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)

s = nntplib.NNTP(host, port, readermode=False, timeout=10)
assert "STARTTLS" in s.getcapabilities(), s.getcapabilities()
try:
    s.login("alice", "s3cret!")
    sys.exit("a password was taken in clear")
except nntplib.NNTPTemporaryError as e:
    assert str(e).startswith("483"), e
s.starttls(ctx)
assert "STARTTLS" not in s.getcapabilities(), s.getcapabilities()
s.login("alice", "s3cret!")
resp, count, first, last, name = s.group("local.test")
assert resp.startswith("211"), resp
s.quit()

s = nntplib.NNTP_SSL(host, tls_port, user="alice", password="s3cret!",
                     ssl_context=ctx, readermode=False, timeout=10)
resp, count, first, last, name = s.group("local.general")
assert resp.startswith("211"), resp
s.quit()
print("ok")
"#;
    python(
        script,
        &[
            server.addr.ip().to_string(),
            server.addr.port().to_string(),
            server.tls_addr().port().to_string(),
            files.ca_path().display().to_string(),
        ],
    )
    .await;
    drop(files.dir);
    server.stop().await;
}

/// A feed over NNTPS: `a` feeds `b` on b's TLS port, trusting b's
/// certificate file.
#[tokio::test]
async fn a_peer_with_tls_is_fed_over_nntps() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    let b = TestServer::start_with(|c| {
        files.configure(c);
        c.server.path_identity = "b.test".to_owned().try_into().expect("identity");
        c.peers = Config::parse(
            "[[peer]]\nname = \"a\"\npath_identity = \"a.test\"\naccept_from = [\"127.0.0.1\"]\n",
        )
        .expect("peer")
        .peers;
    })
    .await;
    let peer = format!(
        "[[peer]]\nname = \"b\"\npath_identity = \"b.test\"\naddress = \"127.0.0.1:{}\"\n\
         tls = true\ntls_ca = {:?}\n",
        b.tls_addr().port(),
        files.ca_path().display().to_string(),
    );
    let a = TestServer::start_with(|c| {
        c.server.path_identity = "a.test".to_owned().try_into().expect("identity");
        c.peers = Config::parse(&peer).expect("peer").peers;
    })
    .await;

    let mut poster = a.client().await;
    let status = poster
        .post(&article("local.test", "fed over tls", "hello b\r\n"))
        .await;
    let id = posted_id(&status);

    let mut reader = nntps(b.tls_addr(), &trusting(&[&cert])).await;
    let arrived = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if reader.cmd(&format!("STAT {id}")).await.starts_with("223") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(arrived.is_ok(), "{id} never reached b over TLS");
    a.stop().await;
    b.stop().await;
}

/// COMPRESS (RFC 8054) with TLS: STARTTLS is offered until compression
/// starts and refused (502) after; over TLS, compression sits above it
/// (compressed, then encrypted) and carries a post and its reading; with
/// `tls.compress` off, encrypted connections are not offered COMPRESS
/// while plain ones still are.
#[tokio::test]
async fn compress_goes_above_tls_and_shuts_starttls_out() {
    let cert = make_cert();
    let files = CertFiles::new(&cert);
    let server = tls_server(&files, |_| {}).await;
    let trust = trusting(&[&cert]);

    let (mut plain, greeting) = Nntp::greeted(tcp(server.addr).await).await;
    assert!(greeting.starts_with("200"), "{greeting}");
    let caps = plain.capabilities().await;
    assert!(caps.contains(&"STARTTLS".to_owned()), "{caps:?}");
    assert!(caps.contains(&"COMPRESS DEFLATE".to_owned()), "{caps:?}");
    assert_eq!(code(&plain.cmd("COMPRESS DEFLATE").await), "206");
    let mut z = common::Deflated::new(plain.into_inner());
    assert_eq!(code(&z.cmd("CAPABILITIES").await), "101");
    let caps = z.block().await;
    assert!(!caps.contains(&"STARTTLS".to_owned()), "{caps:?}");
    assert_eq!(code(&z.cmd("STARTTLS").await), "502");
    assert_eq!(code(&z.cmd("DATE").await), "111");

    // STARTTLS, log in, then compress: the order RFC 8054 §7 asks for.
    let mut c = starttls(server.addr, &trust).await;
    assert_eq!(code(&c.cmd("AUTHINFO USER alice").await), "381");
    assert_eq!(code(&c.cmd("AUTHINFO PASS s3cret!").await), "281");
    assert_eq!(code(&c.cmd("COMPRESS DEFLATE").await), "206");
    let mut z = common::Deflated::new(c.into_inner());
    let body = "compressed, then encrypted\r\n";
    let id = posted_id(&z.post(&article("local.test", "zlib in tls", body)).await);
    assert_eq!(code(&z.cmd(&format!("BODY {id}")).await), "222");
    assert_eq!(z.block_bytes().await, body.as_bytes());

    // NNTPS works the same way.
    let mut c = nntps(server.tls_addr(), &trust).await;
    assert_eq!(code(&c.cmd("COMPRESS DEFLATE").await), "206");
    let mut z = common::Deflated::new(c.into_inner());
    assert_eq!(code(&z.cmd(&format!("STAT {id}")).await), "223");

    let server = tls_server(&files, |c| c.tls.compress = false).await;
    let mut c = nntps(server.tls_addr(), &trust).await;
    let caps = c.capabilities().await;
    assert!(!caps.iter().any(|l| l.starts_with("COMPRESS")), "{caps:?}");
    assert_eq!(code(&c.cmd("COMPRESS DEFLATE").await), "502");
    let mut c = starttls(server.addr, &trust).await;
    assert_eq!(code(&c.cmd("COMPRESS DEFLATE").await), "502");
    let (mut plain, _) = Nntp::greeted(tcp(server.addr).await).await;
    let caps = plain.capabilities().await;
    assert!(caps.contains(&"COMPRESS DEFLATE".to_owned()), "{caps:?}");
}
