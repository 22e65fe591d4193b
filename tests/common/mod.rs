//! The one test harness: a real server on 127.0.0.1:0 with a real SQLite
//! file in a temporary directory, and a line-level NNTP client whose every
//! read has a deadline, so no test can hang.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use tidings::config::{Config, PeerConfig};
use tidings::server::{self, Server};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long any single read may wait before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The WAL size of test servers (`storage.wal_size_mib`): the default
/// 160 MiB, written in full at each start, would cost the suite minutes.
pub const TEST_WAL_MIB: u64 = 4;

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub config: Config,
    server: Option<Server>,
}

impl TestServer {
    /// A server on the default configuration (starter groups included).
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose configuration `f` adjusts first.
    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        init_logging();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.server.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        config.storage.database = dir.path().join("tidings.db");
        config.storage.wal_size_mib = TEST_WAL_MIB;
        f(&mut config);
        TestServer::start_in(dir, config).await
    }

    /// Starts (or restarts) a server on `config` in `dir`.
    pub async fn start_in(dir: TempDir, config: Config) -> TestServer {
        let server = server::start(config.clone()).await.expect("server starts");
        let addr = server.local_addrs()[0];
        TestServer {
            addr,
            dir,
            config,
            server: Some(server),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.config.storage.database.clone()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Stops the server cleanly and hands back its directory and config
    /// (to restart it on the same database).
    pub async fn stop(mut self) -> (TempDir, Config) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_secs(5)).await;
        }
        (self.dir, self.config)
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// The running server, to reload it.
    pub fn server_mut(&mut self) -> &mut Server {
        self.server.as_mut().expect("running")
    }

    /// Adds a reader who logs in as `name` with `password`.
    pub async fn add_user(&self, name: &str, password: &str) {
        let hash = tidings::auth::hash_password(password).expect("hash");
        self.server()
            .store()
            .add_user(name, &hash)
            .await
            .expect("user");
    }

    /// The first NNTPS address (`tls.listen`).
    pub fn tls_addr(&self) -> SocketAddr {
        self.server().tls_addrs()[0]
    }
}

/// Server logs on stderr when TIDINGS_TEST_LOG is set (e.g. `debug`).
fn init_logging() {
    if let Ok(filter) = std::env::var("TIDINGS_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// A raw NNTP client: it sends lines and reads status lines and blocks.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    pub greeting: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Client::from_stream(stream).await
    }

    /// Connects from the loopback address `source` (e.g. "127.0.0.2"), so
    /// tests can be a client that access rules or peers treat differently.
    pub async fn connect_from(source: &str, addr: SocketAddr) -> Client {
        Client::from_stream(tcp_from(source, addr).await).await
    }

    /// A client on an already connected stream (e.g. bound to a chosen
    /// source address); reads the greeting.
    pub async fn from_stream(stream: TcpStream) -> Client {
        let (r, w) = stream.into_split();
        let mut c = Client {
            reader: BufReader::new(r),
            writer: w,
            greeting: String::new(),
        };
        c.greeting = c.line().await;
        c
    }

    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("send");
    }

    /// Reads one line, without its CRLF (lossy UTF-8). Panics at EOF.
    pub async fn line(&mut self) -> String {
        self.try_line().await.expect("a line before end of stream")
    }

    /// Reads one line; `None` at end of stream.
    pub async fn try_line(&mut self) -> Option<String> {
        read_line(&mut self.reader).await
    }

    /// Reads a dot-terminated block, un-stuffed, as raw bytes with CRLFs.
    pub async fn block_bytes(&mut self) -> Vec<u8> {
        read_block(&mut self.reader).await
    }

    /// Reads a dot-terminated block as lines.
    pub async fn block(&mut self) -> Vec<String> {
        read_block_lines(&mut self.reader).await
    }

    /// Sends a command line and returns the status line.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.line().await
    }

    /// Sends a command and reads its status and block (the block only when
    /// the status is `expect_code`).
    pub async fn cmd_block(&mut self, line: &str, expect_code: &str) -> (String, Vec<String>) {
        let status = self.cmd(line).await;
        if status.starts_with(expect_code) {
            let block = self.block().await;
            (status, block)
        } else {
            (status, Vec::new())
        }
    }

    /// POSTs `article` (lines separated by \r\n, not dot-stuffed) and
    /// returns the final status line.
    pub async fn post(&mut self, article: &str) -> String {
        let status = self.cmd("POST").await;
        assert!(status.starts_with("340"), "POST answered {status}");
        let mut data = Vec::new();
        tidings::wire::dot::stuff(article.as_bytes(), &mut data);
        self.send(&data).await;
        self.line().await
    }

    /// Reads until end of stream (with the deadline); returns what came.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(DEADLINE, self.reader.read_to_end(&mut out)).await;
        out
    }

    /// Splits the client into its halves, for tests that misbehave.
    pub fn into_parts(self) -> (BufReader<OwnedReadHalf>, OwnedWriteHalf) {
        (self.reader, self.writer)
    }
}

/// Sends each TAKETHIS of `commands` (the command line and the article,
/// dot-terminated) on a streaming connection, with up to 64 unanswered,
/// and expects 239 for each.
pub async fn takethis_all(feed: &mut Client, commands: impl IntoIterator<Item = String>) {
    const WINDOW: usize = 64;
    let (mut sent, mut answered) = (0, 0);
    for text in commands {
        feed.send(text.as_bytes()).await;
        sent += 1;
        if sent - answered >= WINDOW {
            let line = feed.line().await;
            assert!(line.starts_with("239"), "{line}");
            answered += 1;
        }
    }
    while answered < sent {
        let line = feed.line().await;
        assert!(line.starts_with("239"), "{line}");
        answered += 1;
    }
}

/// A TCP connection to `addr` from the loopback address `source` (e.g.
/// "127.0.0.2").
pub async fn tcp_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("source address"))
        .expect("bind");
    tokio::time::timeout(DEADLINE, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// A port of 127.0.0.1 that was free a moment ago (servers that name each
/// other as peers must know their ports before any starts).
///
/// It is taken below the kernel's ephemeral range (32768 and up on Linux),
/// where a port the kernel hands out for port 0 could be given, between
/// this call and the server's bind, as the source port of some other
/// test's connection ("Address already in use" once in a while). Each test
/// binary starts at its own place (its pid) and counts up, so the tests of
/// one binary, which run at once, never share one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 10_000;
    const SPAN: u16 = 20_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let offset = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = LOW + offset;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port of 127.0.0.1 in {LOW}..{}", LOW + SPAN);
}

/// A `[[peer]]` as an operator writes it: path identity `NAME.test`, may
/// feed us from 127.0.0.1, gets what matches `send`; fed at `address`
/// (absent: we only receive from it).
pub fn peer(name: &str, address: Option<SocketAddr>, send: &str) -> PeerConfig {
    peer_from(name, address, send, "127.0.0.1")
}

/// `peer`, feeding us from `from` (an address or network).
pub fn peer_from(name: &str, address: Option<SocketAddr>, send: &str, from: &str) -> PeerConfig {
    let address = address
        .map(|a| format!("address = \"{a}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[[peer]]\nname = \"{name}\"\npath_identity = \"{name}.test\"\n{address}\
         accept_from = [\"{from}\"]\nsend = \"{send}\"\n"
    );
    Config::parse(&text).expect("peer config").peers.remove(0)
}

/// A server named `name` (path identity `name.test`) on 127.0.0.1:`port`,
/// with `peers`, carrying `groups` besides the starter groups.
pub async fn node(name: &str, port: u16, peers: Vec<PeerConfig>, groups: &[&str]) -> TestServer {
    let name = name.to_owned();
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    TestServer::start_with(move |c| {
        c.server.listen = vec![SocketAddr::from(([127, 0, 0, 1], port))];
        c.server.path_identity = format!("{name}.test").try_into().expect("identity");
        c.peers = peers;
        for g in groups {
            let text = format!("[[group]]\nname = \"{g}\"\n");
            c.groups.extend(Config::parse(&text).expect("group").groups);
        }
    })
    .await
}

/// 127.0.0.1:`port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The chain A -> B -> C: each server feeds the next everything, and takes
/// its upstream's feed from 127.0.0.1 (path identities a.test, b.test,
/// c.test).
pub async fn chain() -> (TestServer, TestServer, TestServer) {
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let c = node("c", pc, vec![peer("b", None, "*")], &[]).await;
    let b = node(
        "b",
        pb,
        vec![peer("a", None, "*"), peer("c", Some(local(pc)), "*")],
        &[],
    )
    .await;
    let a = node("a", pa, vec![peer("b", Some(local(pb)), "*")], &[]).await;
    (a, b, c)
}

/// A newsreader's connection: from 127.0.0.2, which is no peer.
pub async fn reader(addr: SocketAddr) -> Client {
    Client::connect_from("127.0.0.2", addr).await
}

/// Reads one line from a server, without its CRLF (lossy UTF-8), within
/// the deadline; `None` at end of stream. Any stream: plain or TLS.
pub async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Option<String> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(DEADLINE, reader.read_until(b'\n', &mut buf))
        .await
        .expect("server answered in time")
        .ok()?;
    if n == 0 {
        return None;
    }
    assert!(buf.ends_with(b"\r\n"), "line not CRLF-terminated: {buf:?}");
    buf.truncate(buf.len() - 2);
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Reads a dot-terminated block, un-stuffed, as raw bytes with CRLFs.
pub async fn read_block<R: AsyncBufRead + Unpin>(reader: &mut R) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(DEADLINE, reader.read_until(b'\n', &mut buf))
            .await
            .expect("block in time")
            .expect("read");
        assert!(n > 0, "end of stream inside a block");
        if buf == b".\r\n" {
            return out;
        }
        let line = buf.strip_prefix(b".").unwrap_or(&buf);
        out.extend_from_slice(line);
    }
}

/// Reads a dot-terminated block as lines.
pub async fn read_block_lines<R: AsyncBufRead + Unpin>(reader: &mut R) -> Vec<String> {
    let bytes = read_block(reader).await;
    let text = String::from_utf8_lossy(&bytes);
    text.split_terminator("\r\n").map(str::to_owned).collect()
}

/// A minimal valid article for posting.
pub fn article(groups: &str, subject: &str, body: &str) -> String {
    format!(
        "From: Tester <tester@example.com>\r\nNewsgroups: {groups}\r\nSubject: {subject}\r\n\r\n{body}"
    )
}

/// The message-id out of a "240 Article received <id>" line.
pub fn posted_id(status: &str) -> String {
    assert!(status.starts_with("240 "), "not posted: {status}");
    let start = status.find('<').expect("message-id in 240");
    status[start..]
        .split_whitespace()
        .next()
        .expect("id")
        .to_owned()
}

/// How long a Python client may run before it is killed and the test fails.
pub const PYTHON_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `python3 ARGS...` (a script's path or `-c` and its text, then its
/// arguments) with no input and no bytecode left behind; asserts it exits
/// 0 within `PYTHON_DEADLINE`, showing what it printed otherwise.
pub async fn python<I, A>(args: I)
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let child = tokio::process::Command::new("python3")
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    // On timeout the future (and with it the child) is dropped: killed.
    let out = tokio::time::timeout(PYTHON_DEADLINE, child)
        .await
        .unwrap_or_else(|_| panic!("python3 still running after {PYTHON_DEADLINE:?}; killed"))
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// What a run of a built binary printed, and whether it succeeded.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the built binary `bin` with `args` and no input to completion; the
/// test fails if it takes longer than `limit`, showing what the command
/// had written by then (its warnings, sqlx's slow statements among them).
pub async fn run_binary<I, A>(bin: &str, args: I, limit: Duration) -> Run
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut child = tokio::process::Command::new(bin)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("command ran");
    let drain = |pipe: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let filled = seen.clone();
        let task = tokio::spawn(async move {
            let Some(mut pipe) = pipe else { return };
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                filled
                    .lock()
                    .expect("output")
                    .extend_from_slice(&chunk[..n]);
            }
        });
        (seen, task)
    };
    let (stdout, out_task) = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let (stderr, err_task) = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let text = |b: &std::sync::Arc<std::sync::Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&b.lock().expect("output")).into_owned()
    };
    let Ok(status) = tokio::time::timeout(limit, child.wait()).await else {
        let _ = child.kill().await;
        panic!(
            "{bin} {args:?} did not finish in {limit:?}; it had written:\n{}{}",
            text(&stdout),
            text(&stderr)
        );
    };
    let status = status.expect("command ran");
    let _ = tokio::join!(out_task, err_task);
    Run {
        ok: status.success(),
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

/// Where history stands in the database at `db`: (history_through, the
/// newest article id, history rows of stored articles). The writer merges
/// new message-ids into history after their articles (`store::tail`).
pub async fn history_state(db: &std::path::Path) -> (i64, i64, i64) {
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
    let row: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT value FROM meta WHERE key = 'history_through'), \
                (SELECT coalesce(max(id), 0) FROM articles), \
                (SELECT count(*) FROM history_all WHERE status = 0)",
    )
    .fetch_one(&pool)
    .await
    .expect("read history state");
    pool.close().await;
    row
}

/// Waits up to 10 s until `ready` holds of `history_state(db)`.
pub async fn wait_for_history(db: &std::path::Path, ready: impl Fn((i64, i64, i64)) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = history_state(db).await;
        if ready(state) {
            return;
        }
        let (through, head, rows) = state;
        assert!(
            std::time::Instant::now() < deadline,
            "history through {through} of {head}, {rows} rows of stored articles"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `dir/NAME.toml` for `spawn_binary`: a server with path identity
/// `NAME.test` on 127.0.0.1:0 and its database `dir/NAME.db`, then `extra`
/// (more configuration). Returns the file's path.
pub fn binary_config(dir: &std::path::Path, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\npath_identity = \"{name}.test\"\n\
         [storage]\ndatabase = {:?}\nwal_size_mib = {TEST_WAL_MIB}\n{extra}",
        dir.join(format!("{name}.db")).display().to_string()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Starts the built binary `bin` as `tidings --config CONFIG serve` and
/// returns it with the address its "listening on" log line names. The rest
/// of its log is drained, so it never blocks on a full pipe.
pub async fn spawn_binary(
    bin: &str,
    config: &std::path::Path,
) -> (tokio::process::Child, SocketAddr) {
    let (child, addr, _) = spawn_binary_watching(bin, config, "listening on ").await;
    (child, addr)
}

/// `spawn_binary`, and the first line of its log (from its start) that
/// holds `needle`, when it comes.
pub async fn spawn_binary_watching(
    bin: &str,
    config: &std::path::Path,
    needle: &str,
) -> (
    tokio::process::Child,
    SocketAddr,
    tokio::sync::oneshot::Receiver<String>,
) {
    let (found_tx, found) = tokio::sync::oneshot::channel();
    let mut found_tx = Some(found_tx);
    let needle = needle.to_owned();
    let mut watch = move |line: &str| {
        if line.contains(&needle)
            && let Some(tx) = found_tx.take()
        {
            let _ = tx.send(line.to_owned());
        }
    };
    let mut child = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            watch(&line);
            if let Some(rest) = line.split("listening on ").nth(1) {
                return rest.trim().to_owned();
            }
        }
        panic!("no listening line");
    })
    .await
    .expect("listening in time");
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            watch(&line);
        }
    });
    (child, addr.parse().expect("addr"), found)
}

/// Writes `admin.toml` beside a test server: its database, then `extra`
/// (more configuration), for the CLI to run with beside the server.
pub fn admin_config(server: &TestServer, extra: &str) -> PathBuf {
    let path = server.dir.path().join("admin.toml");
    let text = format!(
        "[storage]\ndatabase = {:?}\nwal_size_mib = {TEST_WAL_MIB}\n{extra}",
        server.db_path().display().to_string()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs the built `tidings --config CONFIG ARGS...` to completion.
pub async fn tidings(config: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec![std::ffi::OsStr::new("--config"), config.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    run_binary(env!("CARGO_BIN_EXE_tidings"), all, Duration::from_secs(30)).await
}

/// The last article id given out, from `tidings stats --json`.
pub async fn log_head(config: &std::path::Path) -> i64 {
    let run = tidings(config, &["stats", "--json"]).await;
    assert!(run.ok, "{}", run.stderr);
    let s: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    s["last_article_id"].as_i64().expect("last_article_id")
}

impl Client {
    /// COMPRESS DEFLATE (RFC 8054): the server must answer 206, and from
    /// then on the connection speaks raw DEFLATE both ways.
    pub async fn compress(mut self) -> Deflated<TcpStream> {
        let status = self.cmd("COMPRESS DEFLATE").await;
        assert!(status.starts_with("206 "), "COMPRESS answered {status}");
        assert!(
            self.reader.buffer().is_empty(),
            "the server sent more after 206 before the client compressed"
        );
        let stream = self
            .reader
            .into_inner()
            .reunite(self.writer)
            .expect("halves of one stream");
        Deflated::new(stream)
    }
}

/// The client side of an RFC 8054 DEFLATE layer, over any stream: lines
/// go out compressed and sync-flushed, answers are inflated as they come.
pub struct Deflated<S> {
    stream: S,
    deflate: flate2::Compress,
    inflate: flate2::Decompress,
    /// Inflated and not yet read.
    plain: Vec<u8>,
    /// Compressed octets received so far.
    pub raw_received: usize,
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Deflated<S> {
    pub fn new(stream: S) -> Deflated<S> {
        Deflated {
            stream,
            deflate: flate2::Compress::new(flate2::Compression::default(), false),
            inflate: flate2::Decompress::new(false),
            plain: Vec::new(),
            raw_received: 0,
        }
    }

    /// Compresses `bytes`, ends them with a sync flush and sends them.
    pub async fn send(&mut self, bytes: &[u8]) {
        let mut raw = Vec::new();
        let mut pos = 0;
        loop {
            raw.reserve(bytes.len() + 1024);
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&bytes[pos..], &mut raw, flate2::FlushCompress::Sync)
                .expect("deflate");
            pos += (self.deflate.total_in() - before) as usize;
            if pos == bytes.len() && raw.len() < raw.capacity() {
                break;
            }
        }
        self.stream.write_all(&raw).await.expect("send");
    }

    /// Reads and inflates more; false at end of stream (or a reset).
    async fn fill(&mut self) -> bool {
        let mut raw = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(DEADLINE, self.stream.read(&mut raw))
            .await
            .expect("server answered in time")
            .unwrap_or_default();
        if n == 0 {
            return false;
        }
        self.raw_received += n;
        let mut pos = 0;
        while pos < n {
            self.plain.reserve(64 * 1024);
            let before = self.inflate.total_in();
            self.inflate
                .decompress_vec(&raw[pos..n], &mut self.plain, flate2::FlushDecompress::Sync)
                .expect("the server's DEFLATE data inflates");
            pos += (self.inflate.total_in() - before) as usize;
        }
        true
    }

    /// One line without its CRLF; `None` at end of stream.
    pub async fn try_line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.plain.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.plain[..end]).into_owned();
                self.plain.drain(..end + 2);
                return Some(line);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    pub async fn line(&mut self) -> String {
        self.try_line().await.expect("a line before end of stream")
    }

    /// A dot-terminated block, un-stuffed, as raw bytes with CRLFs.
    pub async fn block_bytes(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let line = self.line_bytes().await;
            if line == b"." {
                return out;
            }
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
            out.extend_from_slice(b"\r\n");
        }
    }

    async fn line_bytes(&mut self) -> Vec<u8> {
        loop {
            if let Some(end) = self.plain.windows(2).position(|w| w == b"\r\n") {
                let line = self.plain[..end].to_vec();
                self.plain.drain(..end + 2);
                return line;
            }
            assert!(self.fill().await, "end of stream inside a block");
        }
    }

    pub async fn block(&mut self) -> Vec<String> {
        let bytes = self.block_bytes().await;
        String::from_utf8_lossy(&bytes)
            .split_terminator("\r\n")
            .map(str::to_owned)
            .collect()
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.line().await
    }

    /// POSTs `article` through the compressed stream; the final status.
    pub async fn post(&mut self, article: &str) -> String {
        let status = self.cmd("POST").await;
        assert!(status.starts_with("340"), "POST answered {status}");
        let mut data = Vec::new();
        tidings::wire::dot::stuff(article.as_bytes(), &mut data);
        self.send(&data).await;
        self.line().await
    }

    /// Whether the server closes the connection (within the deadline).
    pub async fn closed_by_server(&mut self) -> bool {
        self.plain.clear();
        while self.fill().await {
            self.plain.clear();
        }
        true
    }

    /// The stream beneath, to send raw (uncompressed) bytes.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}
