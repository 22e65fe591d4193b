//! `tidings bench reader`: the reader benchmark of issue 2, run by hand.
//!
//! It starts `tidings serve` as a child process on a fresh database in a
//! scratch directory, fills 20 groups with ~2 KiB articles through POST
//! (over 1 and then 4 connections), then measures the commands newsreaders
//! wait on, one request at a time on an ordinary socket (no pipelining, no
//! socket options), and the server's memory with idle connections open.
//! With `--tls` the server also listens for NNTPS on a throwaway
//! certificate, and the read mix runs again over TLS for comparison; with
//! `--compress` it runs again with COMPRESS DEFLATE (RFC 8054) on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::ingest::known;

#[derive(Args, Debug, Clone)]
pub struct ReaderBench {
    /// Articles to post in all.
    #[arg(long, default_value_t = 100_000)]
    articles: usize,
    /// Groups to spread them over.
    #[arg(long, default_value_t = 20)]
    groups: usize,
    /// Articles posted over one connection before the 4-connection phase.
    #[arg(long, default_value_t = 10_000)]
    single: usize,
    /// Samples per latency measurement.
    #[arg(long, default_value_t = 2_000)]
    samples: usize,
    /// Seconds of the 4-connection read mix.
    #[arg(long, default_value_t = 10)]
    mix_seconds: u64,
    /// Idle connections held open for the memory reading.
    #[arg(long, default_value_t = 200)]
    idle: usize,
    /// Scratch directory (default: a new one under /tmp); its database is
    /// deleted first.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// SQLite synchronous mode for the server under test (full or normal).
    #[arg(long, default_value = "full")]
    synchronous: String,
    /// Also serve NNTPS (a generated certificate) and run the read mix over
    /// TLS after the plain one.
    #[arg(long)]
    tls: bool,
    /// Run the read mix again with COMPRESS DEFLATE on every connection,
    /// and report its rate and the octets the server sent.
    #[arg(long)]
    compress: bool,
}

pub(crate) type BenchResult<T> = Result<T, String>;

pub(crate) fn err<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// Where a reader connects: plain NNTP, or NNTPS trusting `config`; and
/// whether it turns COMPRESS on.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    compress: bool,
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target {
            addr,
            tls: None,
            compress: false,
        }
    }
}

/// A newsreader-like connection, plain or TLS, compressed or not.
struct Reader {
    r: BufReader<Box<dyn AsyncRead + Send + Unpin>>,
    w: Box<dyn AsyncWrite + Send + Unpin>,
    line: Vec<u8>,
    /// COMPRESS DEFLATE is on.
    z: Option<Box<crate::wire::deflate::ClientLayer>>,
    /// Octets read from the socket.
    received: u64,
}

impl Reader {
    async fn connect(target: impl Into<Target>) -> BenchResult<Reader> {
        let target = target.into();
        let s = TcpStream::connect(target.addr)
            .await
            .map_err(err("connect"))?;
        type Halves = (
            Box<dyn AsyncRead + Send + Unpin>,
            Box<dyn AsyncWrite + Send + Unpin>,
        );
        let (r, w): Halves = match target.tls {
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from("localhost")
                    .map_err(err("server name"))?;
                let tls = crate::tls::connect(config, name, s)
                    .await
                    .map_err(err("TLS handshake"))?;
                let (r, w) = tokio::io::split(tls);
                (Box::new(r), Box::new(w))
            }
            None => {
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
        };
        let mut c = Reader {
            r: BufReader::new(r),
            w,
            line: Vec::new(),
            z: None,
            received: 0,
        };
        c.status().await?;
        if target.compress {
            if c.cmd("COMPRESS DEFLATE", &[]).await? != 206 {
                return Err("COMPRESS DEFLATE refused".into());
            }
            let unread = c.r.buffer().to_vec();
            c.r.consume(unread.len());
            c.z = Some(Box::new(crate::wire::deflate::ClientLayer::new(unread)));
        }
        Ok(c)
    }

    /// Reads one line (with its CRLF) into `self.line`; its length, 0 at
    /// end of stream.
    async fn read_line(&mut self) -> BenchResult<usize> {
        self.line.clear();
        let Some(z) = self.z.as_deref_mut() else {
            let n = self
                .r
                .read_until(b'\n', &mut self.line)
                .await
                .map_err(err("read"))?;
            self.received += n as u64;
            return Ok(n);
        };
        let (n, read) = crate::wire::connection::read_deflated_line(
            z,
            self.r.get_mut(),
            &mut self.line,
            1 << 20,
        )
        .await
        .map_err(err("read"))?;
        self.received += read as u64;
        Ok(n)
    }

    async fn send(&mut self, bytes: &[u8]) -> BenchResult<()> {
        match self.z.as_deref_mut() {
            Some(z) => {
                let raw = z.compress(bytes).map_err(err("deflate"))?;
                self.w.write_all(raw).await.map_err(err("write"))
            }
            None => self.w.write_all(bytes).await.map_err(err("write")),
        }
    }

    async fn status(&mut self) -> BenchResult<u16> {
        let n = self.read_line().await?;
        if n < 3 {
            return Err("connection closed".into());
        }
        std::str::from_utf8(&self.line[..3])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {:?}", String::from_utf8_lossy(&self.line)))
    }

    /// Reads a block, returning its size in octets.
    async fn block(&mut self) -> BenchResult<usize> {
        let mut total = 0;
        loop {
            let n = self.read_line().await?;
            if n == 0 {
                return Err("connection closed in a block".into());
            }
            if self.line == b".\r\n" {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Sends a command; reads its status and, for `multi` codes, the block.
    async fn cmd(&mut self, line: &str, multi: &[u16]) -> BenchResult<u16> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        let code = self.status().await?;
        if multi.contains(&code) {
            self.block().await?;
        }
        Ok(code)
    }

    async fn post(&mut self, article: &[u8]) -> BenchResult<u16> {
        self.send(b"POST\r\n").await?;
        let code = self.status().await?;
        if code != 340 {
            return Err(format!("POST answered {code}"));
        }
        self.send(article).await?;
        self.status().await
    }
}

fn group_name(i: usize) -> String {
    format!("bench.group{i:02}")
}

fn msgid(i: usize) -> String {
    format!("<bench.{i}@bench.invalid>")
}

/// A ~2 KiB article, already dot-stuffed and terminated for POST.
fn make_article(i: usize, groups: usize) -> Vec<u8> {
    let mut a = format!(
        "From: Bench <bench@bench.invalid>\r\nNewsgroups: {}\r\nSubject: benchmark article {i}\r\n\
         Message-ID: {}\r\n\r\n",
        group_name(i % groups),
        msgid(i)
    );
    let line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while a.len() < 2048 {
        a.push_str(line);
    }
    a.push_str(".\r\n");
    a.into_bytes()
}

/// The `q` quantile (0 to 1) of `sorted`, the nearest sample; the default
/// when it is empty.
pub(crate) fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

struct Latency(Vec<Duration>);

impl Latency {
    fn report(&mut self, name: &str) {
        self.0.sort();
        let pick = |q: f64| quantile(&self.0, q);
        println!(
            "  {name:<28} p50 {:>8.3} ms   p99 {:>8.3} ms   ({} samples)",
            pick(0.5).as_secs_f64() * 1e3,
            pick(0.99).as_secs_f64() * 1e3,
            self.0.len()
        );
    }
}

/// A small deterministic generator (no dependency needed for a benchmark).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

pub(crate) struct ServerProcess {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

async fn start_server(
    b: &ReaderBench,
    dir: &Path,
    tls: Option<&(String, SocketAddr)>,
) -> BenchResult<ServerProcess> {
    let groups: Vec<String> = (0..b.groups).map(group_name).collect();
    let mut extra = format!(
        "[limits]
max_connections = {0}
max_connections_per_address = {0}
",
        b.idle + 64
    );
    if let Some((table, _)) = tls {
        extra.push_str(table);
    }
    spawn_server(dir, "bench", &b.synchronous, &groups, &extra).await
}

/// A throwaway certificate for localhost in `dir`: the `[tls]` table that
/// serves it on a free port, and a client configuration that trusts it.
fn tls_setup(dir: &Path) -> BenchResult<((String, SocketAddr), Arc<rustls::ClientConfig>)> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).map_err(err("certificate"))?;
    let cert = dir.join("bench-cert.pem");
    let key = dir.join("bench-key.pem");
    std::fs::write(&cert, ck.cert.pem()).map_err(err("write certificate"))?;
    std::fs::write(&key, ck.signing_key.serialize_pem()).map_err(err("write key"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let table = format!(
        "[tls]\ncertificate = {:?}\nkey = {:?}\nlisten = [\"{addr}\"]\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let client = crate::tls::client_config(Some(&cert)).map_err(err("client TLS"))?;
    Ok(((table, addr), client))
}

/// Starts `tidings serve` on a fresh database `dir/{name}.db` with the
/// given groups and extra configuration (TOML tables after [storage]).
/// A port of 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> BenchResult<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(err("free port"))?;
    Ok(l.local_addr().map_err(err("free port"))?.port())
}

pub(crate) async fn spawn_server(
    dir: &Path,
    name: &str,
    synchronous: &str,
    groups: &[String],
    extra: &str,
) -> BenchResult<ServerProcess> {
    spawn_server_with_history(dir, name, synchronous, groups, extra, 0).await
}

/// `spawn_server` on a database whose history already holds `history`
/// message-ids, as that of a server that has run for a while.
pub(crate) async fn spawn_server_with_history(
    dir: &Path,
    name: &str,
    synchronous: &str,
    groups: &[String],
    extra: &str,
    history: usize,
) -> BenchResult<ServerProcess> {
    let port = free_port()?;
    let db = dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    if history > 0 {
        seed_history(&db, history, groups).await?;
    }
    let mut config = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\npath_identity = \"{name}.invalid\"\n\
         domain = \"{name}.invalid\"\n[storage]\ndatabase = \"{}\"\nsynchronous = \"{}\"\n\
         {extra}",
        db.display(),
        synchronous,
    );
    for g in groups {
        config.push_str(&format!("[[group]]\nname = \"{g}\"\n"));
    }
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, config).map_err(err("write config"))?;
    let exe = std::env::current_exe().map_err(err("current exe"))?;
    let log = std::env::var("TIDINGS_BENCH_LOG").unwrap_or_else(|_| "warn".into());
    let mut command = Command::new(exe);
    command
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if history > 0 {
        // Its log says when the message-id filter is built.
        command
            .env("RUST_LOG", format!("{log},{}=info", known::LOG_TARGET))
            .stderr(Stdio::piped());
    } else {
        command.env("RUST_LOG", log).stderr(Stdio::inherit());
    }
    let mut child = command.spawn().map_err(err("start server"))?;
    let filter_built = child.stderr.take().map(watch_for_filter);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = std::time::Instant::now() + START_WAIT;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the server exited before listening: {status}"));
        }
        if TcpStream::connect(addr).await.is_ok() {
            if let Some(built) = filter_built {
                // Until then every CHECK asks history: a restart, not the
                // steady state this measures.
                match tokio::time::timeout(FILTER_WAIT, built).await {
                    Ok(Ok(())) => {}
                    _ => return Err("the server did not build its message-id filter".into()),
                }
            }
            return Ok(ServerProcess { child, addr });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("server did not start listening".into())
}

/// How long a server is given to start listening: a preallocated
/// database (`storage.preallocate_mib`) is written whole first, ~7 s per
/// GiB on the 2-core VM.
const START_WAIT: Duration = Duration::from_secs(300);

/// How long a server is given to build its message-id filter (~1.3 s for
/// 2 million ids on the 2-core VM).
const FILTER_WAIT: Duration = Duration::from_secs(300);

/// Passes a server's log on to ours, and tells when it says its message-id
/// filter is built (`known::BUILT`).
fn watch_for_filter(log: tokio::process::ChildStderr) -> tokio::sync::oneshot::Receiver<()> {
    let (built, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut built = Some(built);
        let mut lines = BufReader::new(log).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
            if line.contains(known::BUILT)
                && let Some(built) = built.take()
            {
                let _ = built.send(());
            }
        }
    });
    rx
}

/// Creates the database at `db` with `groups` (as the server does with a
/// new database) and writes `ids` random message-ids to its history, in
/// random order as a feed brings them (so its leaves are as full as a real
/// history's), remembered as expired articles.
async fn seed_history(db: &Path, ids: usize, groups: &[String]) -> BenchResult<()> {
    use sqlx::ConnectOptions;
    let started = Instant::now();
    let storage = crate::config::StorageConfig {
        database: db.to_owned(),
        ..Default::default()
    };
    // The server's own schema and page size.
    let (store, _) = crate::store::Store::open(&storage)
        .await
        .map_err(err("create the database"))?;
    for g in groups {
        let name =
            crate::wire::types::GroupName::try_from(g.as_str()).map_err(err("group name"))?;
        store
            .add_group(&name, 'y', "", "tidings")
            .await
            .map_err(err("create a group"))?;
    }
    store.close().await;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        // Its one statement is slow by design.
        .disable_statement_logging()
        .connect()
        .await
        .map_err(err("open the database"))?;
    // Room for the index being built: random inserts into a cache smaller
    // than it are a read and a write per id.
    sqlx::query("PRAGMA cache_size = -1048576")
        .execute(&mut conn)
        .await
        .map_err(err("seed history"))?;
    sqlx::query(
        "INSERT INTO history (msgid, article_id, status, remember_until)          WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)          SELECT '<' || lower(hex(randomblob(8))) || '.h' || i || '@history.bench.invalid>',                 NULL, 3, NULL FROM n",
    )
    .bind(ids as i64)
    .execute(&mut conn)
    .await
    .map_err(err("seed history"))?;
    sqlx::Connection::close(conn)
        .await
        .map_err(err("close the database"))?;
    println!(
        "history: {ids} message-ids written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs each command in turn, one at a time, and reports their latencies.
async fn timed(
    c: &mut Reader,
    name: &str,
    cmds: Vec<String>,
    multi: &[u16],
    expect: u16,
) -> BenchResult<()> {
    let mut lat = Latency(Vec::with_capacity(cmds.len()));
    for cmd in cmds {
        let t = Instant::now();
        let code = c.cmd(&cmd, multi).await?;
        lat.0.push(t.elapsed());
        if code != expect {
            return Err(format!("{cmd} answered {code}, expected {expect}"));
        }
    }
    lat.report(name);
    Ok(())
}

/// Resident memory of a process: (total, anonymous, file-backed) in KiB.
/// File-backed pages are the database's mmap: page cache the kernel can
/// drop, counted once per mapping; anonymous pages are the server's own.
pub(crate) fn rss_kib(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("RssAnon:")?, field("RssFile:")?))
}

/// CPU time a process has used so far (user and system), in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command, which may hold spaces, in parentheses.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads its argument.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| (utime + stime) as f64 / hz as f64)
}

pub(crate) fn report_rss(pid: u32, when: &str) {
    if let Some((total, anon, file)) = rss_kib(pid) {
        println!(
            "server RSS {when}: {:.1} MiB ({:.1} MiB anonymous, {:.1} MiB file-backed)",
            total as f64 / 1024.0,
            anon as f64 / 1024.0,
            file as f64 / 1024.0
        );
    }
}

async fn post_range(addr: SocketAddr, ids: Vec<usize>, groups: usize) -> BenchResult<()> {
    let mut c = Reader::connect(addr).await?;
    for i in ids {
        let code = c.post(&make_article(i, groups)).await?;
        if code != 240 {
            return Err(format!("post {i} answered {code}"));
        }
    }
    Ok(())
}

/// A benchmark's scratch directory: the one given, which is kept, or a new
/// one under the system's temporary directory, removed however the run
/// ends (its databases take gigabytes, and a failed run used to leave
/// them behind).
pub(crate) struct Scratch {
    path: PathBuf,
    remove: bool,
}

impl Scratch {
    /// `given`, or `<temp>/<prefix>-<pid>`; created if need be.
    pub(crate) fn new(given: Option<&Path>, prefix: &str) -> BenchResult<Scratch> {
        let scratch = match given {
            Some(d) => Scratch {
                path: d.to_owned(),
                remove: false,
            },
            None => Scratch {
                path: std::env::temp_dir().join(format!("{prefix}-{}", std::process::id())),
                remove: true,
            },
        };
        std::fs::create_dir_all(&scratch.path).map_err(err("scratch dir"))?;
        Ok(scratch)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub async fn run(b: ReaderBench) -> BenchResult<()> {
    let scratch = Scratch::new(b.dir.as_deref(), "tidings-bench")?;
    let dir = scratch.path();
    let tls = if b.tls { Some(tls_setup(dir)?) } else { None };
    let mut server = start_server(&b, dir, tls.as_ref().map(|(t, _)| t)).await?;
    let addr = server.addr;
    let pid = server.child.id().unwrap_or(0);
    println!(
        "tidings reader benchmark: {} articles of ~2 KiB in {} groups, synchronous={}",
        b.articles, b.groups, b.synchronous
    );

    // Posting, one connection.
    let single = b.single.min(b.articles);
    let t = Instant::now();
    post_range(addr, (0..single).collect(), b.groups).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "POST, 1 connection:  {:>8.0} posts/s ({single} in {secs:.2} s)",
        single as f64 / secs
    );

    // Posting, four connections.
    let rest: Vec<usize> = (single..b.articles).collect();
    if !rest.is_empty() {
        let t = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..4 {
            let ids: Vec<usize> = rest.iter().copied().skip(k).step_by(4).collect();
            tasks.push(tokio::spawn(post_range(addr, ids, b.groups)));
        }
        for task in tasks {
            task.await.map_err(err("poster"))??;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "POST, 4 connections: {:>8.0} posts/s ({} in {secs:.2} s)",
            rest.len() as f64 / secs,
            rest.len()
        );
    }
    report_rss(pid, "after filling");

    // Latencies, one connection, one request at a time.
    println!("latency, 1 connection, no pipelining:");
    let mut c = Reader::connect(addr).await?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let per_group = b.articles / b.groups.max(1);
    let n = b.samples;
    let groups = b.groups;
    let cmds: Vec<String> = (0..n)
        .map(|_| format!("GROUP {}", group_name(rng.below(groups))))
        .collect();
    timed(&mut c, "GROUP", cmds, &[], 211).await?;
    c.cmd(&format!("GROUP {}", group_name(0)), &[]).await?;
    let cmds = (0..n)
        .map(|_| {
            let start = 1 + rng.below(per_group.saturating_sub(100).max(1));
            format!("OVER {start}-{}", start + 99)
        })
        .collect();
    timed(&mut c, "OVER 100", cmds, &[224], 224).await?;
    let cmds = (0..(n / 10).max(10))
        .map(|_| format!("LISTGROUP {}", group_name(rng.below(groups))))
        .collect();
    timed(
        &mut c,
        &format!("LISTGROUP ({per_group} articles)"),
        cmds,
        &[211],
        211,
    )
    .await?;
    c.cmd(&format!("GROUP {}", group_name(0)), &[]).await?;
    for (verb, code) in [("ARTICLE", 220u16), ("HEAD", 221)] {
        let cmds = (0..n)
            .map(|_| format!("{verb} {}", 1 + rng.below(per_group)))
            .collect();
        timed(&mut c, &format!("{verb} by number"), cmds, &[code], code).await?;
        let cmds = (0..n)
            .map(|_| format!("{verb} {}", msgid(rng.below(b.articles))))
            .collect();
        timed(
            &mut c,
            &format!("{verb} by message-id"),
            cmds,
            &[code],
            code,
        )
        .await?;
    }
    drop(c);

    // Read mix over four connections, plain, then TLS.
    let (plain, plain_octets) = read_mix(addr.into(), &b).await?;
    println!(
        "read mix (GROUP, OVER-100, HEAD, ARTICLE), 4 connections: {plain:.0} ops/s, \
         {plain_octets:.0} octets received per op"
    );
    if let Some(((_, tls_addr), config)) = &tls {
        let target = Target {
            addr: *tls_addr,
            tls: Some(config.clone()),
            compress: false,
        };
        let (over_tls, _) = read_mix(target, &b).await?;
        println!(
            "read mix over TLS (NNTPS), 4 connections: {over_tls:.0} ops/s ({:+.1}% vs plain)",
            (over_tls / plain - 1.0) * 100.0
        );
    }

    if b.compress {
        let target = Target {
            compress: true,
            ..Target::from(addr)
        };
        let (compressed, octets) = read_mix(target, &b).await?;
        println!(
            "read mix with COMPRESS DEFLATE, 4 connections: {compressed:.0} ops/s ({:+.1}% vs \
             plain), {octets:.0} octets received per op ({:+.1}%)",
            (compressed / plain - 1.0) * 100.0,
            (octets / plain_octets - 1.0) * 100.0
        );
    }

    // Memory with idle connections.
    let mut idle = Vec::with_capacity(b.idle);
    for _ in 0..b.idle {
        idle.push(Reader::connect(addr).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    report_rss(pid, &format!("with {} idle connections", b.idle));
    drop(idle);
    let _ = server.child.kill().await;
    Ok(())
}

/// Four readers, each a newsreader's loop (GROUP, OVER 100, HEAD and
/// ARTICLE by number, ARTICLE by message-id), for `mix_seconds`: ops/s,
/// and octets read from the socket per op.
async fn read_mix(target: Target, b: &ReaderBench) -> BenchResult<(f64, f64)> {
    let groups = b.groups;
    let per_group = b.articles / b.groups.max(1);
    let deadline = Instant::now() + Duration::from_secs(b.mix_seconds);
    let mut tasks = Vec::new();
    for k in 0..4u64 {
        let articles = b.articles;
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Reader::connect(target).await?;
            let mut rng = Rng(0x1234_5678 + k);
            let mut ops = 0u64;
            while Instant::now() < deadline {
                let g = rng.below(groups);
                c.cmd(&format!("GROUP {}", group_name(g)), &[]).await?;
                let start = 1 + rng.below(per_group.saturating_sub(100).max(1));
                c.cmd(&format!("OVER {start}-{}", start + 99), &[224])
                    .await?;
                for _ in 0..4 {
                    let num = 1 + rng.below(per_group);
                    c.cmd(&format!("HEAD {num}"), &[221]).await?;
                    c.cmd(&format!("ARTICLE {num}"), &[220]).await?;
                }
                c.cmd(&format!("ARTICLE {}", msgid(rng.below(articles))), &[220])
                    .await?;
                ops += 11;
            }
            Ok::<(u64, u64), String>((ops, c.received))
        }));
    }
    let (mut ops, mut octets) = (0, 0);
    for t in tasks {
        let (o, r) = t.await.map_err(err("reader"))??;
        ops += o;
        octets += r;
    }
    Ok((
        ops as f64 / b.mix_seconds as f64,
        octets as f64 / ops.max(1) as f64,
    ))
}
