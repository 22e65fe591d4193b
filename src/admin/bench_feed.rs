//! `tidings bench stream`: the transit benchmarks of issue 3, run by hand.
//!
//! - ingest: a peer streams N articles with pipelined CHECK/TAKETHIS (a
//!   window of commands in flight per connection) into a fresh tidings, or
//!   into any server given with --target; with --vs-inn the same load goes
//!   first into a private INN (CNFS) and the ratio is reported;
//! - flood: how fast that server then feeds its backlog onward to a second
//!   tidings (started with the backlog, measured until drained);
//! - latency: post on A, poll on C in a chain A-B-C, per article.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore, mpsc};

use super::bench::{
    BenchResult, cpu_seconds, err, free_port, report_rss, spawn_server, spawn_server_with_history,
};

#[derive(Args, Debug, Clone)]
pub struct StreamBench {
    /// Articles to stream in all.
    #[arg(long, default_value_t = 100_000)]
    articles: usize,
    /// Approximate article size in bytes.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Streaming connections.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Articles in flight per connection (offered by CHECK and not yet
    /// answered 438/431/239/439), as innfeed counts its window.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Stream into this server instead of starting a tidings (it must take
    /// streaming from 127.0.0.1 and carry the load's groups, see
    /// `--groups`).
    #[arg(long)]
    target: Option<SocketAddr>,
    /// Use IHAVE (lock-step) instead of CHECK/TAKETHIS.
    #[arg(long)]
    ihave: bool,
    /// Send TAKETHIS without asking CHECK first (innfeed's no-CHECK mode).
    #[arg(long, conflicts_with = "pipelined")]
    no_check: bool,
    /// Send CHECK and TAKETHIS back to back for each article, without
    /// waiting for the CHECK's answer.
    #[arg(long)]
    pipelined: bool,
    /// SQLite synchronous mode of the servers under test (full or normal).
    #[arg(long, default_value = "full")]
    synchronous: String,
    /// Also measure flooding the ingested backlog to a second tidings.
    #[arg(long)]
    flood: bool,
    /// Flood with the feed compressed (the peer's `compress = true`).
    #[arg(long, requires = "flood")]
    compress_feed: bool,
    /// Also measure post-to-readable latency over a chain A-B-C (samples).
    #[arg(long, default_value_t = 0)]
    chain: usize,
    /// Scratch directory (default: a new one under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A prefix making this run's message-ids unique (default: the time).
    #[arg(long)]
    run_id: Option<String>,
    /// Also run the same ingest load, in the same run, against a private
    /// INN with CNFS storage made by this script (the project's
    /// tests/inn/setup.sh: needs Debian's inn2 and root), and report the
    /// ratio.
    #[arg(long, value_name = "SETUP_SCRIPT", conflicts_with = "target")]
    vs_inn: Option<PathBuf>,
    /// Seconds a fresh INN is left alone before it is measured (INN is
    /// slow for a while after its spool is made).
    #[arg(long, default_value_t = 30)]
    inn_settle: u64,
    /// Measure the ingest this many times, each with new message-ids, and
    /// report the medians: with --vs-inn, INN and tidings take turns, so a
    /// machine whose speed drifts during the run (a VM) slows both alike.
    #[arg(long, default_value_t = 1, conflicts_with = "flood")]
    rounds: usize,
    /// MiB of a scratch file written and deleted before the measurements,
    /// so that the page cache the servers grow into comes from memory the
    /// machine has handed out before (default with --vs-inn or --flood:
    /// three times the articles' bytes, else 0). On a VM a page of memory
    /// touched for the first time can cost ~7 us (4 GiB: 6.9 s here),
    /// about what writing it costs: a database that grows pays that per
    /// page, while INN writes its whole CNFS buffer while it is set up,
    /// untimed; and a flood, whose peer stores the articles a second
    /// time, ran at 13.9k/s of 20 KiB cold against 21.5k/s warmed (120,000
    /// articles).
    #[arg(long, value_name = "MIB")]
    warm: Option<usize>,
    /// Also stream the same load, in the same run, into a built-in server
    /// that stores nothing, and into one that writes each article to a
    /// scratch file and fdatasyncs it before answering (once per burst):
    /// the most this client, the wire and a durable acknowledgement allow
    /// on this machine.
    #[arg(long, conflicts_with = "target")]
    ceiling: bool,
    /// Then stream a cancel of each article of the (last) load the same
    /// way, and report cancels/s and how many articles they withdrew. The
    /// server under test carries out every cancel (`[cancels] process =
    /// "all"`), the load's articles having no Cancel-Lock.
    #[arg(long, conflicts_with_all = ["flood", "target"])]
    cancels: bool,
    /// Newsgroups the load is spread over, article i in group i mod N
    /// (`bench.stream` when 1; `bench.stream.0` ... otherwise), as a real
    /// feed's articles go to many groups: each group's overview grows at
    /// its own place in the table. With `--vs-inn`, INN gets the same
    /// groups.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    groups: u32,
    /// Message-ids already in the history of the server under test, as in
    /// one that has run for a while (written before it starts; the run
    /// begins once its message-id filter is built).
    #[arg(long, default_value_t = 0, conflicts_with = "target")]
    history: usize,
    /// A setting of the `[storage]` table of the server under test, as
    /// TOML (`body_min_bytes = 8192`); may be given again for more.
    #[arg(long, value_name = "SETTING", conflicts_with = "target")]
    storage: Vec<String>,
    /// Threads of this process that keep a CPU busy at the lowest priority
    /// (nice 19) while everything is measured, as a compression or backup
    /// job on the same host would: a server should lose to them little
    /// more than the CPU time they get.
    #[arg(long, value_name = "THREADS", default_value_t = 0)]
    background_load: usize,
}

const GROUP: &str = "bench.stream";

/// The groups a load of `n` groups goes to (`--groups`).
fn load_groups(n: u32) -> Vec<String> {
    match n {
        0 | 1 => vec![GROUP.to_owned()],
        n => (0..n).map(|g| format!("{GROUP}.{g}")).collect(),
    }
}

/// How a streaming client offers each article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// CHECK, then TAKETHIS when the answer is 238 (innfeed's default).
    CheckFirst,
    /// CHECK and TAKETHIS back to back.
    Pipelined,
    /// TAKETHIS alone (innfeed's no-CHECK mode).
    TakeThisOnly,
}

/// What a command sent was, for reading its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// A CHECK whose 238 asks for a TAKETHIS.
    Check,
    /// A CHECK followed by its TAKETHIS already.
    CheckOnly,
    TakeThis,
}

/// Article `i` of the run. Its message-id starts with a hash of `i`: a
/// real feed's ids come from many servers and newsreaders and arrive in no
/// key order, and ids numbered in order would flatter the history index
/// (consecutive ids share its pages; measured, 63-67k against 33-37k
/// articles/s on one pipelined connection when every id was indexed as it
/// was stored).
fn make_article(run: &str, i: usize, size: usize, group: &str) -> (String, Vec<u8>) {
    let id = format!(
        "<{:016x}.s{i}.{run}@bench.invalid>",
        crate::ingest::known::splitmix(i as u64)
    );
    let mut a = format!(
        "Path: origin.invalid!not-for-mail\r\nFrom: Bench <bench@bench.invalid>\r\n\
         Newsgroups: {group}\r\nSubject: streamed article {i}\r\nMessage-ID: {id}\r\n\
         Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n"
    );
    let line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while a.len() < size {
        a.push_str(line);
    }
    a.push_str(".\r\n");
    (id, a.into_bytes())
}

/// A cancel control message for each article of `articles`, as
/// `make_article` makes them.
fn make_cancels(
    run: &str,
    articles: &[(String, Vec<u8>)],
    groups: &[String],
) -> Vec<(String, Vec<u8>)> {
    (articles.iter().enumerate())
        .map(|(i, (target, _))| {
            let id = format!("<c{i}.{run}@bench.invalid>");
            let group = &groups[i % groups.len()];
            let text = format!(
                "Path: origin.invalid!not-for-mail\r\nFrom: Bench <bench@bench.invalid>\r\n\
                 Newsgroups: {group}\r\nSubject: cmsg cancel {target}\r\nMessage-ID: {id}\r\n\
                 Control: cancel {target}\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\n\r\n\
                 Cancelled.\r\n.\r\n"
            );
            (id, text.into_bytes())
        })
        .collect()
}

/// Streams `ids` over one connection with CHECK then TAKETHIS for each
/// 238, keeping at most `window` articles unanswered. Returns accepted.
async fn stream_one(
    addr: SocketAddr,
    articles: Arc<Vec<(String, Vec<u8>)>>,
    ids: Vec<usize>,
    window: usize,
    mode: Mode,
) -> BenchResult<usize> {
    let stream = TcpStream::connect(addr).await.map_err(err("connect"))?;
    stream.set_nodelay(true).map_err(err("nodelay"))?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await.map_err(err("greeting"))?;
    w.write_all(b"MODE STREAM\r\n")
        .await
        .map_err(err("write"))?;
    line.clear();
    r.read_line(&mut line).await.map_err(err("read"))?;
    if !line.starts_with("203") {
        return Err(format!("MODE STREAM answered {}", line.trim_end()));
    }
    let permits = Arc::new(Semaphore::new(window));
    let (want_tx, mut want_rx) = mpsc::unbounded_channel::<usize>();
    let sent: Arc<Mutex<VecDeque<(Sent, usize)>>> = Arc::default();
    let total = ids.len();

    let reader = {
        let sent = sent.clone();
        let permits = permits.clone();
        tokio::spawn(async move {
            let mut accepted = 0;
            let mut answered_articles = 0;
            let mut line = String::new();
            while answered_articles < total {
                line.clear();
                let n = r.read_line(&mut line).await.map_err(err("read"))?;
                if n == 0 {
                    return Err("server closed the connection".to_string());
                }
                let (kind, i) = sent
                    .lock()
                    .await
                    .pop_front()
                    .ok_or("answer without a command")?;
                match (kind, line.get(..3)) {
                    (Sent::Check, Some("238")) => {
                        let _ = want_tx.send(i);
                        continue;
                    }
                    (Sent::CheckOnly, _) => continue,
                    (Sent::TakeThis, Some("239")) => accepted += 1,
                    _ => {}
                }
                answered_articles += 1;
                permits.add_permits(1);
            }
            drop(want_tx);
            Ok::<usize, String>(accepted)
        })
    };

    let mut next = 0;
    let mut buf = Vec::new();
    let mut batch: Vec<(Sent, usize)> = Vec::new();
    // A new article's commands under `mode`.
    let offer = |batch: &mut Vec<(Sent, usize)>, i: usize| match mode {
        Mode::CheckFirst => batch.push((Sent::Check, i)),
        Mode::Pipelined => batch.extend([(Sent::CheckOnly, i), (Sent::TakeThis, i)]),
        Mode::TakeThisOnly => batch.push((Sent::TakeThis, i)),
    };
    loop {
        // Wait for something to send: a TAKETHIS for a wanted article
        // (its article already holds a place in the window), or room in
        // the window for a new CHECK.
        batch.clear();
        match want_rx.try_recv() {
            Ok(i) => batch.push((Sent::TakeThis, i)),
            Err(_) if next < ids.len() => {
                tokio::select! {
                    biased;
                    Some(i) = want_rx.recv() => batch.push((Sent::TakeThis, i)),
                    p = permits.clone().acquire_owned() => {
                        p.map_err(err("window"))?.forget();
                        next += 1;
                        offer(&mut batch, ids[next - 1]);
                    }
                }
            }
            Err(_) => match want_rx.recv().await {
                Some(i) => batch.push((Sent::TakeThis, i)),
                None => break,
            },
        }
        // Then everything else that can go now, in one write, as a real
        // streaming feeder does.
        loop {
            if let Ok(i) = want_rx.try_recv() {
                batch.push((Sent::TakeThis, i));
            } else if next < ids.len() {
                match permits.clone().try_acquire_owned() {
                    Ok(p) => {
                        p.forget();
                        next += 1;
                        offer(&mut batch, ids[next - 1]);
                    }
                    Err(_) => break,
                }
            } else {
                break;
            }
        }
        buf.clear();
        for &(kind, i) in &batch {
            let (id, bytes) = &articles[i];
            if kind == Sent::TakeThis {
                buf.extend_from_slice(format!("TAKETHIS {id}\r\n").as_bytes());
                buf.extend_from_slice(bytes);
            } else {
                buf.extend_from_slice(format!("CHECK {id}\r\n").as_bytes());
            }
        }
        sent.lock().await.extend(batch.iter().copied());
        w.write_all(&buf).await.map_err(err("write"))?;
    }
    let accepted = reader.await.map_err(err("reader"))??;
    let _ = w.write_all(b"QUIT\r\n").await;
    Ok(accepted)
}

/// The client's wait for each answer of a lock-step IHAVE, in µs.
#[derive(Default)]
struct IhaveWaits {
    /// From sending `IHAVE <id>` to reading 335.
    offer: Vec<u32>,
    /// From sending the article to reading 235.
    article: Vec<u32>,
}

impl IhaveWaits {
    fn merge(&mut self, other: IhaveWaits) {
        self.offer.extend(other.offer);
        self.article.extend(other.article);
    }

    fn report(mut self) {
        /// p50 (p90, mean) of `v`, in µs.
        fn figures(v: &mut [u32]) -> String {
            v.sort_unstable();
            let mean = v.iter().map(|&x| u64::from(x)).sum::<u64>() / (v.len() as u64).max(1);
            format!(
                "{} ({}, {mean})",
                super::bench::quantile(v, 0.5),
                super::bench::quantile(v, 0.9)
            )
        }
        println!(
            "  client's wait, p50 (p90, mean): offer to 335 {} µs, article to 235 {} µs",
            figures(&mut self.offer),
            figures(&mut self.article)
        );
    }
}

/// Offers `ids` with IHAVE, one at a time. Returns accepted, and how long
/// each answer took.
async fn ihave_one(
    addr: SocketAddr,
    articles: Arc<Vec<(String, Vec<u8>)>>,
    ids: Vec<usize>,
) -> BenchResult<(usize, IhaveWaits)> {
    let stream = TcpStream::connect(addr).await.map_err(err("connect"))?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await.map_err(err("greeting"))?;
    let mut accepted = 0;
    let mut waits = IhaveWaits::default();
    let micros = |t: Instant| u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
    for i in ids {
        let (id, bytes) = &articles[i];
        let t = Instant::now();
        w.write_all(format!("IHAVE {id}\r\n").as_bytes())
            .await
            .map_err(err("write"))?;
        line.clear();
        r.read_line(&mut line).await.map_err(err("read"))?;
        waits.offer.push(micros(t));
        if !line.starts_with("335") {
            continue;
        }
        let t = Instant::now();
        w.write_all(bytes).await.map_err(err("write"))?;
        line.clear();
        r.read_line(&mut line).await.map_err(err("read"))?;
        waits.article.push(micros(t));
        if line.starts_with("235") {
            accepted += 1;
        }
    }
    Ok((accepted, waits))
}

fn peer_block(name: &str, address: Option<SocketAddr>) -> String {
    let address = address
        .map(|a| format!("address = \"{a}\"\n"))
        .unwrap_or_default();
    format!(
        "[[peer]]\nname = \"{name}\"\npath_identity = \"{name}.invalid\"\n{address}\
         accept_from = [\"127.0.0.1\"]\n"
    )
}

/// Counts articles in `groups` on a server (the sum of GROUP's counts).
async fn group_count(addr: SocketAddr, groups: &[String]) -> BenchResult<u64> {
    let stream = TcpStream::connect(addr).await.map_err(err("connect"))?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await.map_err(err("greeting"))?;
    let mut commands: String = groups.iter().map(|g| format!("GROUP {g}\r\n")).collect();
    commands.push_str("QUIT\r\n");
    w.write_all(commands.as_bytes())
        .await
        .map_err(err("write"))?;
    let mut total = 0;
    for _ in groups {
        line.clear();
        r.read_line(&mut line).await.map_err(err("read"))?;
        total += line
            .split_whitespace()
            .nth(1)
            .filter(|_| line.starts_with("211"))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("GROUP answered {}", line.trim_end()))?;
    }
    Ok(total)
}

pub async fn run(b: StreamBench) -> BenchResult<()> {
    let scratch = super::bench::Scratch::new(b.dir.as_deref(), "tidings-stream")?;
    let dir = scratch.path();
    let run_id = b
        .run_id
        .clone()
        .unwrap_or_else(|| chrono::Utc::now().format("%H%M%S%f").to_string());
    let load_groups = load_groups(b.groups);
    let mut groups = load_groups.clone();
    if b.cancels {
        // Where the cancels go, out of the load's group.
        groups.push("control.cancel".to_owned());
    }

    let rounds = b.rounds.max(1);
    // Each round's message-ids are new to both servers.
    let load = |round: usize| -> Arc<Vec<(String, Vec<u8>)>> {
        let run = if rounds == 1 {
            run_id.clone()
        } else {
            format!("{run_id}r{round}")
        };
        Arc::new(
            (0..b.articles)
                .map(|i| make_article(&run, i, b.size, &load_groups[i % load_groups.len()]))
                .collect(),
        )
    };
    let mut articles = load(0);
    let bytes: usize = articles.iter().map(|(_, a)| a.len()).sum();

    // The sink for the flood measurement starts first, so the ingesting
    // server can name it as a peer (paused until the ingest is done).
    let sink = if b.flood && b.target.is_none() {
        Some(spawn_server(dir, "sink", "full", &groups, &peer_block("bench", None)).await?)
    } else {
        None
    };
    let mut server = None;
    let addr = match b.target {
        Some(a) => a,
        None => {
            // The [storage] table is open: its settings come first.
            let mut extra: String = b.storage.iter().map(|s| format!("{s}\n")).collect();
            // Beside INN, tidings gets the room INN's cycbuff gets, made
            // before the timed rounds as that is (`Inn::start`), unless
            // --storage says otherwise.
            let room =
                b.vs_inn.is_some() && !b.storage.iter().any(|s| s.contains("preallocate_mib"));
            if room {
                let mib = cycbuff_mib(bytes * rounds);
                extra.push_str(&format!("preallocate_mib = {mib}\n"));
                println!("tidings' database preallocated to {mib} MiB, INN's cycbuff's size");
            }
            extra.push_str(&peer_block("origin", None));
            if let Some(s) = &sink {
                extra.push_str(&peer_block("sink", Some(s.addr)));
                if b.compress_feed {
                    extra.push_str("compress = true\n");
                }
            }
            if b.cancels {
                extra.push_str("[cancels]\nprocess = \"all\"\n");
            }
            let s =
                spawn_server_with_history(dir, "bench", &b.synchronous, &groups, &extra, b.history)
                    .await?;
            let a = s.addr;
            server = Some(s);
            a
        }
    };
    if sink.is_some() {
        pause_sink(dir, true).await?;
    }

    println!(
        "tidings stream benchmark: {} articles of ~{} bytes, {} connection(s), synchronous={}, {}{}",
        b.articles,
        b.size,
        b.connections,
        b.synchronous,
        if b.ihave {
            "IHAVE".to_owned()
        } else if b.no_check {
            format!("TAKETHIS only, window {}", b.window)
        } else if b.pipelined {
            format!("CHECK+TAKETHIS back to back, window {}", b.window)
        } else {
            format!("CHECK/TAKETHIS window {}", b.window)
        },
        if rounds > 1 {
            format!(", {rounds} rounds")
        } else {
            String::new()
        }
    );
    let inn = match &b.vs_inn {
        Some(script) => Some(Inn::start(&b, script, dir, bytes * rounds).await?),
        None => None,
    };
    let _load = (b.background_load > 0).then(|| {
        println!(
            "background load: {} thread(s) busy at nice 19",
            b.background_load
        );
        BackgroundLoad::start(b.background_load)
    });
    // Everything measured while INN may run, so that it is stopped once,
    // however this ends.
    let measured = async {
        let warm = b.warm.unwrap_or(if inn.is_some() || b.flood {
            3 * bytes * rounds / (1 << 20)
        } else {
            0
        });
        if warm > 0 {
            let t = Instant::now();
            warm_page_cache(dir, warm).await?;
            println!(
                "page cache warmed: {warm} MiB written and deleted in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        let ceilings = if b.ceiling {
            ceilings(&b, dir, &articles).await?
        } else {
            Vec::new()
        };
        let (mut rates, mut inn_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut cpu_micros = Vec::new();
        let mut accepted = 0;
        for round in 0..rounds {
            if round > 0 {
                articles = load(round);
            }
            let inn_rate = match &inn {
                Some(inn) => Some(inn.ingest(&b, &articles, bytes).await?),
                None => None,
            };
            let pid = server.as_ref().and_then(|s| s.child.id());
            let cpu_before = pid.and_then(cpu_seconds);
            let (n, secs) = ingest(&b, addr, &articles).await?;
            accepted += n;
            let rate = n as f64 / secs;
            // The server's CPU per article: steadier than the rate on a
            // machine whose speed drifts, and what a second core buys.
            let cpu = match (cpu_before, pid.and_then(cpu_seconds)) {
                (Some(before), Some(after)) if n > 0 => {
                    let micros = (after - before) / n as f64 * 1e6;
                    cpu_micros.push(micros);
                    format!(
                        "; server CPU {micros:.1} µs per article ({:.0}% of a core)",
                        (after - before) / secs * 100.0
                    )
                }
                _ => String::new(),
            };
            println!(
                "ingest: {n} accepted in {secs:.2} s: {rate:.0} articles/s, {:.1} MB/s{cpu}",
                bytes as f64 / secs / 1e6
            );
            rates.push(rate);
            if let Some(inn) = inn_rate {
                let ratio = rate / inn.max(f64::MIN_POSITIVE);
                println!("tidings / INN: {ratio:.2}x");
                inn_rates.push(inn);
                ratios.push(ratio);
            }
            if round == 0 {
                for (what, ceiling) in &ceilings {
                    println!(
                        "tidings / ceiling ({what}): {:.2}",
                        rate / ceiling.max(f64::MIN_POSITIVE)
                    );
                }
            }
        }
        if b.cancels {
            let cancels = Arc::new(make_cancels(&run_id, &articles, &load_groups));
            let (n, secs) = ingest(&b, addr, &cancels).await?;
            let left = group_count(addr, &load_groups).await?;
            println!(
                "cancels: {n} accepted in {secs:.2} s: {:.0} cancels/s; {} articles withdrawn, {left} left",
                n as f64 / secs,
                (articles.len() as u64).saturating_sub(left)
            );
        }
        Ok::<_, String>((accepted, rates, inn_rates, ratios, cpu_micros))
    }
    .await;
    if let Some(inn) = &inn {
        inn.stop().await;
    }
    let (accepted, rates, inn_rates, ratios, cpu_micros) = measured?;
    if rounds > 1 {
        let each = |v: &[f64], digits: usize| {
            v.iter()
                .map(|x| format!("{x:.digits$}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "median of {rounds} rounds: {:.0} articles/s (each: {})",
            median(rates.clone()),
            each(&rates, 0)
        );
        if !cpu_micros.is_empty() {
            println!(
                "median of {rounds} rounds: server CPU {:.1} µs per article (each: {})",
                median(cpu_micros.clone()),
                each(&cpu_micros, 1)
            );
        }
        if !ratios.is_empty() {
            println!(
                "median of {rounds} rounds: INN {:.0} articles/s, tidings / INN {:.2}x (each: {})",
                median(inn_rates.clone()),
                median(ratios.clone()),
                each(&ratios, 2)
            );
        }
    }
    if let Some(s) = &server
        && let Some(pid) = s.child.id()
    {
        report_rss(pid, "after ingest");
    }

    if let Some(s) = &sink {
        let t = Instant::now();
        pause_sink(dir, false).await?;
        // Timed from the first article's arrival: the feeder notices a
        // resume within a second, which is not flooding speed.
        let mut first: Option<(Instant, u64)> = None;
        loop {
            let n = group_count(s.addr, &load_groups).await?;
            if first.is_none() && n > 0 {
                first = Some((Instant::now(), n));
            }
            if n >= accepted as u64 {
                break;
            }
            if t.elapsed() > Duration::from_secs(600) {
                return Err(format!("flood stalled at {n} of {accepted}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (since, n0) = first.unwrap_or((t, 0));
        let secs = since.elapsed().as_secs_f64().max(1e-3);
        println!(
            "flood: a backlog of {accepted} fed onward: {:.0} articles/s \
             ({} in {secs:.2} s after the first arrived)",
            (accepted as u64 - n0) as f64 / secs,
            accepted as u64 - n0
        );
        if let Some(s) = &server
            && let Some(pid) = s.child.id()
        {
            report_rss(pid, "after flooding (the feeding server)");
        }
    }

    if b.chain > 0 {
        chain_latency(dir, b.chain).await?;
    }
    for mut s in [server, sink].into_iter().flatten() {
        let _ = s.child.kill().await;
    }
    Ok(())
}

/// Streams every article into `addr` the way `b` says, over its
/// connections: (accepted, seconds).
async fn ingest(
    b: &StreamBench,
    addr: SocketAddr,
    articles: &Arc<Vec<(String, Vec<u8>)>>,
) -> BenchResult<(usize, f64)> {
    let t = Instant::now();
    if b.ihave {
        let mut tasks = Vec::new();
        for k in 0..b.connections {
            let ids: Vec<usize> = (k..b.articles).step_by(b.connections).collect();
            tasks.push(tokio::spawn(ihave_one(addr, articles.clone(), ids)));
        }
        let (mut accepted, mut waits) = (0, IhaveWaits::default());
        for task in tasks {
            let (n, w) = task.await.map_err(err("offerer"))??;
            accepted += n;
            waits.merge(w);
        }
        let secs = t.elapsed().as_secs_f64();
        waits.report();
        return Ok((accepted, secs));
    }
    let mut tasks = Vec::new();
    for k in 0..b.connections {
        let ids: Vec<usize> = (k..b.articles).step_by(b.connections).collect();
        let mode = if b.no_check {
            Mode::TakeThisOnly
        } else if b.pipelined {
            Mode::Pipelined
        } else {
            Mode::CheckFirst
        };
        tasks.push(tokio::spawn(stream_one(
            addr,
            articles.clone(),
            ids,
            b.window,
            mode,
        )));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.map_err(err("streamer"))??;
    }
    Ok((accepted, t.elapsed().as_secs_f64()))
}

/// Busy threads at the lowest priority (`--background-load`), stopped on
/// drop.
struct BackgroundLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BackgroundLoad {
    fn start(threads: usize) -> BackgroundLoad {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..threads)
            .filter_map(|_| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name("background-load".into())
                    .spawn(move || {
                        // On Linux the nice value is a thread's own, and
                        // `who` 0 names the calling thread.
                        // SAFETY: a plain system call on no memory of ours.
                        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
                        let mut n = 0u64;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            n = std::hint::black_box(n.wrapping_add(1));
                        }
                    })
                    .ok()
            })
            .collect();
        BackgroundLoad { stop, threads }
    }
}

impl Drop for BackgroundLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Streams the load into the built-in ceiling servers (`bench_ceiling`):
/// one that stores nothing, one that syncs each burst to a scratch file.
/// Returns (what, articles/s) of each.
async fn ceilings(
    b: &StreamBench,
    dir: &std::path::Path,
    articles: &Arc<Vec<(String, Vec<u8>)>>,
) -> BenchResult<Vec<(&'static str, f64)>> {
    let scratch = dir.join("ceiling.scratch");
    let mut rates = Vec::new();
    for (what, file) in [
        ("nothing stored", None),
        ("one fdatasync per burst", Some(scratch.as_path())),
    ] {
        let addr = super::bench_ceiling::start(file).map_err(err("ceiling server"))?;
        let (accepted, secs) = ingest(b, addr, articles).await?;
        let rate = accepted as f64 / secs;
        println!("ceiling, {what}: {accepted} accepted in {secs:.2} s: {rate:.0} articles/s");
        rates.push((what, rate));
    }
    let _ = std::fs::remove_file(&scratch);
    Ok(rates)
}

/// A private INN (CNFS) started by the project's setup script.
struct Inn {
    addr: SocketAddr,
    dir: PathBuf,
    stop: PathBuf,
}

impl Inn {
    /// Starts INN with `script`, with room for `bytes` of articles, and
    /// leaves it alone for `--inn-settle` seconds.
    async fn start(
        b: &StreamBench,
        script: &std::path::Path,
        dir: &std::path::Path,
        bytes: usize,
    ) -> BenchResult<Inn> {
        let inn_dir = dir.join("inn");
        let _ = std::fs::remove_dir_all(&inn_dir);
        std::fs::create_dir_all(&inn_dir).map_err(err("INN dir"))?;
        let port = free_port()?;
        // Room for every article twice over, so CNFS never wraps mid-run.
        let cycbuff_mb = cycbuff_mib(bytes);
        let out = tokio::process::Command::new("bash")
            .arg(script)
            .arg(&inn_dir)
            .arg(port.to_string())
            .env("INN_CYCBUFF_MB", cycbuff_mb.to_string())
            .env("INN_ICDSYNCCOUNT", "10")
            .env("INN_EXTRA_GROUPS", load_groups(b.groups).join(" "))
            .output()
            .await
            .map_err(err("INN setup"))?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            // The setup script's exit status 77: no INN here (or no root).
            return Err(match out.status.code() {
                Some(77) => format!("INN is not installed or cannot run here: {why}"),
                _ => format!("INN setup ({}) failed: {why}", script.display()),
            });
        }
        let inn = Inn {
            addr: ([127, 0, 0, 1], port).into(),
            dir: inn_dir,
            stop: script.with_file_name("stop.sh"),
        };
        tokio::time::sleep(Duration::from_secs(b.inn_settle)).await;
        Ok(inn)
    }

    /// Streams `articles` into INN: its rate (articles/s).
    async fn ingest(
        &self,
        b: &StreamBench,
        articles: &Arc<Vec<(String, Vec<u8>)>>,
        bytes: usize,
    ) -> BenchResult<f64> {
        let result = ingest(b, self.addr, articles).await;
        // INN never syncs: what it wrote is still on its way to the disk,
        // and would slow the fsyncs of the tidings run that follows.
        // Flush it first.
        let _ = tokio::process::Command::new("sync").status().await;
        let (accepted, secs) = result?;
        let rate = accepted as f64 / secs;
        println!(
            "INN (CNFS): {accepted} accepted in {secs:.2} s: {rate:.0} articles/s, {:.1} MB/s",
            bytes as f64 / secs / 1e6
        );
        Ok(rate)
    }

    async fn stop(&self) {
        let _ = tokio::process::Command::new("bash")
            .arg(&self.stop)
            .arg(&self.dir)
            .output()
            .await;
    }
}

/// Writes `mib` MiB to a scratch file in `dir`, syncs and deletes it: the
/// page cache it took is free again, in memory the machine has backed.
async fn warm_page_cache(dir: &std::path::Path, mib: usize) -> BenchResult<()> {
    let path = dir.join("warm.scratch");
    let written = tokio::task::spawn_blocking({
        let path = path.clone();
        move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&path)?;
            let chunk = vec![0x5a_u8; 1 << 20];
            for _ in 0..mib {
                f.write_all(&chunk)?;
            }
            f.sync_all()
        }
    })
    .await
    .map_err(err("warming the page cache"))?;
    let removed = std::fs::remove_file(&path);
    written.map_err(err("warming the page cache"))?;
    removed.map_err(err("removing the scratch file"))
}

/// The size of INN's cycbuff for a load of `bytes` in all (its rounds
/// included), in MiB: room for it twice over.
fn cycbuff_mib(bytes: usize) -> usize {
    (2 * bytes / (1 << 20)).max(64)
}

/// The median of `v` (0 when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Pauses or resumes the bench server's feed to the sink, through the
/// admin command an operator would use.
async fn pause_sink(dir: &std::path::Path, pause: bool) -> BenchResult<()> {
    let exe = std::env::current_exe().map_err(err("current exe"))?;
    let status = tokio::process::Command::new(exe)
        .arg("--config")
        .arg(dir.join("bench.toml"))
        .args(["peer", if pause { "pause" } else { "resume" }, "sink"])
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .map_err(err("peer pause"))?;
    if status.success() {
        Ok(())
    } else {
        Err("tidings peer pause/resume failed".into())
    }
}

/// Posts on A and measures until each article is readable on C.
async fn chain_latency(dir: &std::path::Path, samples: usize) -> BenchResult<()> {
    let groups = vec![GROUP.to_owned()];
    let c = spawn_server(dir, "chainc", "full", &groups, &peer_block("chainb", None)).await?;
    let b_extra = format!(
        "{}{}",
        peer_block("chaina", None),
        peer_block("chainc", Some(c.addr))
    );
    let b = spawn_server(dir, "chainb", "full", &groups, &b_extra).await?;
    let a = spawn_server(
        dir,
        "chaina",
        "full",
        &groups,
        &peer_block("chainb", Some(b.addr)),
    )
    .await?;
    // Let the feeders connect.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stream = TcpStream::connect(a.addr).await.map_err(err("connect"))?;
    let (ra, mut wa) = stream.into_split();
    let mut ra = BufReader::new(ra);
    let stream = TcpStream::connect(c.addr).await.map_err(err("connect"))?;
    let (rc, mut wc) = stream.into_split();
    let mut rc = BufReader::new(rc);
    let mut line = String::new();
    ra.read_line(&mut line).await.map_err(err("read"))?;
    rc.read_line(&mut line).await.map_err(err("read"))?;
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples {
        let id = format!("<chain{i}.{}@bench.invalid>", std::process::id());
        let t = Instant::now();
        wa.write_all(b"POST\r\n").await.map_err(err("write"))?;
        line.clear();
        ra.read_line(&mut line).await.map_err(err("read"))?;
        let article = format!(
            "From: b@bench.invalid\r\nNewsgroups: {GROUP}\r\nSubject: chain {i}\r\n\
             Message-ID: {id}\r\n\r\nbody\r\n.\r\n"
        );
        wa.write_all(article.as_bytes())
            .await
            .map_err(err("write"))?;
        line.clear();
        ra.read_line(&mut line).await.map_err(err("read"))?;
        if !line.starts_with("240") {
            return Err(format!("POST on A answered {}", line.trim_end()));
        }
        loop {
            wc.write_all(format!("STAT {id}\r\n").as_bytes())
                .await
                .map_err(err("write"))?;
            line.clear();
            rc.read_line(&mut line).await.map_err(err("read"))?;
            if line.starts_with("223") {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(format!("{id} never reached C"));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "chain A-B-C: post on A to readable on C: p50 {:.2} ms, p99 {:.2} ms ({samples} articles)",
        p(0.5),
        p(0.99)
    );
    for mut s in [a, b, c] {
        let _ = s.child.kill().await;
    }
    Ok(())
}
