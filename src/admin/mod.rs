//! The operator's commands: `tidings group`, `tidings article`,
//! `tidings stats`. They work on the database directly (safe beside a
//! running server under WAL; the server reads groups from the database on
//! every command, so a change is seen at once). Output is for people by
//! default and JSON with `--json`.

pub mod bench;
pub mod bench_ceiling;
pub mod bench_feed;
pub mod cancel;
pub mod check;
pub mod import;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::config::Config;
use crate::store::{GroupInfo, Store, StoreError};
use crate::wire::types::{GroupName, MessageId};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Manage newsgroups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Look at stored articles.
    #[command(subcommand)]
    Article(ArticleCommand),
    /// Feeds to peers: state, backlog, pause and resume.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Readers who log in (AUTHINFO). Passwords are read from a prompt, or
    /// from the first line of standard input when it is not a terminal;
    /// never from the command line.
    #[command(subcommand)]
    User(UserCommand),
    /// Totals: groups, articles, bytes, history.
    Stats(JsonFlag),
    /// Remove articles past their groups' retention ([expire] in the
    /// configuration) and forget message-ids remembered long enough. The
    /// running server does this itself every expire.interval_secs.
    Expire {
        /// Expire as of this time (Unix seconds) instead of now.
        #[arg(long)]
        at: Option<i64>,
        /// Only report what would be expired and forgotten; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Make the running server re-read its configuration file (as SIGHUP).
    Reload,
    /// Copy the database, consistently, while the server runs: the copy is
    /// everything committed when it starts (articles, groups, history,
    /// users, peers' cursors). To restore, stop the server, remove the
    /// database's -wal and -shm files and put the copy in its place.
    Backup {
        /// The copy to write; it must not exist.
        file: std::path::PathBuf,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Check the configuration (as INN's inncheck) before starting or
    /// reloading on it: the files it names (TLS certificates, the
    /// database's directory) and programs it runs; then say what it sets up.
    Check,
    /// Benchmarks, run by hand (they start their own server).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Posting and reading as newsreaders do (issue 2's targets).
    Reader(bench::ReaderBench),
    /// Peers streaming into a server, flooding onward, chain latency.
    Stream(Box<bench_feed::StreamBench>),
}

#[derive(Args)]
pub struct JsonFlag {
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a newsgroup.
    Add {
        name: String,
        /// y: posting allowed, n: no posting, m: moderated.
        #[arg(long, default_value = "y")]
        status: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Remove a newsgroup and the articles that were only in it.
    Remove { name: String },
    /// List newsgroups.
    List(JsonFlag),
    /// Show one newsgroup.
    Show {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Change a newsgroup's status or description.
    Set {
        name: String,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Create newsgroups from an INN `active` file and describe them from
    /// a `newsgroups` file (INN's formats, also those of the lists
    /// published on ftp.isc.org). Groups already here keep their status
    /// and description; article numbers are not carried over.
    Import {
        /// An active file: `name high low flag` a line. Flags y, n and m
        /// are imported; x, j and =alias groups are skipped and reported.
        #[arg(long)]
        active: Option<std::path::PathBuf>,
        /// A newsgroups file: the name, white space, the description. It
        /// describes groups that are here (or imported with it) and have
        /// no description yet; it creates none.
        #[arg(long)]
        newsgroups: Option<std::path::PathBuf>,
        /// Report what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: JsonFlag,
    },
}

#[derive(Subcommand)]
pub enum PeerCommand {
    /// The configured peers, one line each.
    List(JsonFlag),
    /// One peer's feed (or all): connected, backlog, counters, last error.
    Status {
        name: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Stop feeding a peer (the backlog keeps growing; nothing is lost).
    Pause { name: String },
    /// Feed a paused peer again, from where it stopped.
    Resume { name: String },
    /// Move a peer's cursor: to the head of the log (skip the backlog), or
    /// with --to to an article log id (0 offers everything again).
    ResetCursor {
        name: String,
        #[arg(long)]
        to: Option<i64>,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (asks for the password).
    Add { name: String },
    /// Change a user's password (asks for it).
    Passwd { name: String },
    /// Delete a user.
    Remove { name: String },
    /// List users.
    List(JsonFlag),
}

#[derive(Subcommand)]
pub enum ArticleCommand {
    /// Print an article by message-id (or GROUP:NUMBER).
    Show {
        /// <id@host>, or GROUP:NUMBER as a newsreader numbers it.
        message_id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Cancel a post made here on every server it reached: posts a cancel
    /// with the key to the lock this server puts on its posts, through the
    /// running server (which must let this host post).
    Cancel {
        /// <id@host>, or GROUP:NUMBER as a newsreader numbers it.
        message_id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Withdraw an article from this server (INN's `ctlinnd cancel`): it
    /// leaves every group, and peers cannot feed it back while its
    /// message-id is remembered (storage.remember_days). Other servers
    /// keep their copies.
    Remove {
        /// <id@host>, or GROUP:NUMBER as a newsreader numbers it.
        message_id: String,
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// A failure the operator should read: printed as `tidings: {0}`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure(e.to_string())
    }
}

pub async fn run(config: &Config, command: AdminCommand) -> ExitCode {
    match execute(config, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidings: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn open(config: &Config) -> Result<Store, Failure> {
    let path = &config.storage.database;
    if !path.exists() {
        return Err(Failure(format!(
            "no database at {} (start the server once to create it, or pass --config)",
            path.display()
        )));
    }
    let mut storage = config.storage.clone();
    storage.read_connections = 1;
    // The server makes the room when it starts; a command only looks.
    storage.preallocate_mib = 0;
    let (store, _) = Store::open(&storage).await?;
    Ok(store)
}

/// A message-id given on the command line.
fn message_id_arg(arg: &str) -> Result<MessageId, Failure> {
    MessageId::try_from(arg)
        .map_err(|e| Failure(format!("{e}: {arg:?} (give <id@host>, or GROUP:NUMBER)")))
}

/// An article as the command line names it.
enum ArticleArg<'a> {
    Id(MessageId),
    /// `GROUP:NUMBER`, as a newsreader numbers it.
    Numbered(&'a str, u64),
}

/// Reads an article argument: `GROUP:NUMBER`, or else a message-id,
/// refused here if malformed (before the database is opened).
fn article_arg(arg: &str) -> Result<ArticleArg<'_>, Failure> {
    if !arg.starts_with('<')
        && let Some((group, number)) = arg.rsplit_once(':')
        && let Ok(number) = number.parse()
    {
        return Ok(ArticleArg::Numbered(group, number));
    }
    message_id_arg(arg).map(ArticleArg::Id)
}

/// The message-id an article argument names; `GROUP:NUMBER` is looked up
/// in that group.
async fn resolve_article(store: &Store, arg: ArticleArg<'_>) -> Result<MessageId, Failure> {
    let (name, number) = match arg {
        ArticleArg::Id(id) => return Ok(id),
        ArticleArg::Numbered(name, number) => (name, number),
    };
    let group =
        (store.group(name).await?).ok_or_else(|| Failure(format!("no such newsgroup: {name}")))?;
    let msgid = (store.msgid_by_number(group.id, number).await?).ok_or_else(|| {
        Failure(format!(
            "no article {number} in {name} (it holds {}-{})",
            group.low, group.high
        ))
    })?;
    message_id_arg(&msgid)
}

/// Who runs the command, for what it creates (`creator` of a group).
fn operator() -> String {
    std::env::var("USER").unwrap_or_else(|_| "admin".to_owned())
}

/// The store, the message-id `arg` gives and the article it names; a
/// failure when it is not here.
async fn stored_article(
    config: &Config,
    arg: &str,
) -> Result<(Store, MessageId, crate::store::StoredArticle), Failure> {
    let arg = article_arg(arg)?;
    let store = open(config).await?;
    let id = resolve_article(&store, arg).await?;
    match store.article_by_msgid(&id).await? {
        Some(a) => Ok((store, id, a)),
        None => Err(not_here(&store, &id).await),
    }
}

/// Why `id` is not here, as far as history knows.
async fn not_here(store: &Store, id: &MessageId) -> Failure {
    let known = match store.history_of(id).await {
        Ok(k) => k,
        Err(e) => return Failure(format!("no article {id} (history: {e})")),
    };
    let why = match known {
        None => "never seen here, or forgotten since".to_owned(),
        Some((status, until)) => {
            let what = match status {
                1 => "refused",
                2 => "cancelled",
                3 => "expired or removed",
                _ => "not stored",
            };
            format!(
                "{what}; its message-id is remembered until {}, so peers cannot feed it again",
                when(until)
            )
        }
    };
    Failure(format!("no article {id}: {why}"))
}

fn parse_status(s: &str) -> Result<char, Failure> {
    match s {
        "y" | "n" | "m" => Ok(s.chars().next().unwrap_or('y')),
        _ => Err(Failure(format!(
            "invalid status {s:?}: use y (posting allowed), n (no posting) or m (moderated)"
        ))),
    }
}

fn group_name(s: &str) -> Result<GroupName, Failure> {
    GroupName::try_from(s).map_err(|e| Failure(format!("{e}: {s:?}")))
}

fn group_json(g: &GroupInfo) -> serde_json::Value {
    json!({
        "name": g.name,
        "status": g.status.to_string(),
        "description": g.description,
        "low": g.low,
        "high": g.high,
        "count": g.count,
        "created": chrono::DateTime::from_timestamp(g.created, 0).map(|t| t.to_rfc3339()),
        "creator": g.creator,
    })
}

fn print_group(g: &GroupInfo) {
    let created = chrono::DateTime::from_timestamp(g.created, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    println!("name:        {}", g.name);
    println!("status:      {}", status_text(g.status));
    println!("description: {}", g.description);
    println!("articles:    {} (numbers {}-{})", g.count, g.low, g.high);
    println!("created:     {created} by {}", g.creator);
}

fn status_text(status: char) -> &'static str {
    match status {
        'y' => "y (posting allowed)",
        'n' => "n (no posting)",
        'm' => "m (moderated)",
        _ => "?",
    }
}

async fn execute(config: &Config, command: AdminCommand) -> Result<(), Failure> {
    match command {
        AdminCommand::Bench(BenchCommand::Reader(b)) => bench::run(b).await.map_err(Failure),
        AdminCommand::Bench(BenchCommand::Stream(b)) => bench_feed::run(*b).await.map_err(Failure),
        AdminCommand::Group(g) => group(config, g).await,
        AdminCommand::Check => check_config(config),
        AdminCommand::Backup { file, json } => backup(config, &file, json.json).await,
        AdminCommand::Peer(p) => peer(config, p).await,
        AdminCommand::User(u) => user(config, u).await,
        AdminCommand::Reload => {
            reload(config)?;
            note_groups_not_carried(config).await
        }
        AdminCommand::Article(ArticleCommand::Show { message_id, json }) => {
            let (_, _, a) = stored_article(config, &message_id).await?;
            if json.json {
                let v = json!({
                    "message_id": a.msgid,
                    "log_id": a.id,
                    "bytes": a.bytes.len(),
                    "xref": crate::article::header_value(&a.bytes, "Xref"),
                    "article": String::from_utf8_lossy(&a.bytes),
                });
                println!("{v:#}");
            } else {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let text = a.bytes.split(|&b| b == b'\n');
                for line in text {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let _ = out.write_all(line);
                    let _ = out.write_all(b"\n");
                }
            }
            Ok(())
        }
        AdminCommand::Article(ArticleCommand::Cancel { message_id, json }) => {
            let (store, id, stored) = stored_article(config, &message_id).await?;
            let secrets = store.cancel_secrets().await?;
            let text = cancel::cancel_article(config, &secrets, &id, &stored).map_err(Failure)?;
            let addr = cancel::server_address(config)
                .ok_or_else(|| Failure("server.listen names no address".to_owned()))?;
            let posted = cancel::post(addr, &text).await.map_err(Failure)?;
            if json.json {
                println!(
                    "{:#}",
                    json!({ "cancelled": id.as_str(), "cancel": posted })
                );
            } else {
                println!("cancelled {id} with {posted}");
            }
            Ok(())
        }
        AdminCommand::Article(ArticleCommand::Remove { message_id, json }) => {
            let arg = article_arg(&message_id)?;
            let store = open(config).await?;
            let id = resolve_article(&store, arg).await?;
            let until = chrono::Utc::now().timestamp() + config.storage.remember_secs();
            let Some(bytes) = store.remove_article(&id, until).await? else {
                return Err(not_here(&store, &id).await);
            };
            if json.json {
                println!("{:#}", json!({ "removed": id.as_str(), "bytes": bytes }));
            } else {
                println!("removed {id} ({bytes} octets)");
            }
            Ok(())
        }
        AdminCommand::Expire { at, dry_run, json } => {
            let store = open(config).await?;
            let now = at.unwrap_or_else(|| chrono::Utc::now().timestamp());
            let r = if dry_run {
                store.expire_preview_by(config, now).await?
            } else {
                store.expire_by(config, now).await?
            };
            if json.json {
                let v = json!({
                    "dry_run": dry_run,
                    "articles": r.articles,
                    "bytes": r.bytes,
                    "numbers": r.numbers,
                    "groups": r.groups,
                    "forgotten": r.forgotten,
                });
                println!("{v:#}");
            } else {
                let (expired, forgot) = if dry_run {
                    ("would expire", "would forget")
                } else {
                    ("expired", "forgot")
                };
                println!(
                    "{expired} {} articles ({} bytes), {} numbers in {} groups; {forgot} {} message-ids",
                    r.articles, r.bytes, r.numbers, r.groups, r.forgotten
                );
            }
            Ok(())
        }
        AdminCommand::Stats(json) => {
            let store = open(config).await?;
            let s = store.stats().await?;
            if json.json {
                println!("{:#}", json!(s));
            } else {
                println!("groups:        {}", s.groups);
                println!("articles:      {}", s.articles);
                println!("article bytes: {}", s.article_bytes);
                println!("history:       {} message-ids", s.history);
                println!("last log id:   {}", s.last_article_id);
                println!(
                    "database size: {} bytes ({} free)",
                    s.database_bytes, s.free_bytes
                );
                println!(
                    "body segments: {} ({} bytes, the bodies of {} articles; {} free)",
                    s.body_segments,
                    s.body_segment_bytes,
                    s.articles_with_body_apart,
                    s.free_body_segments
                );
            }
            Ok(())
        }
    }
}

async fn group(config: &Config, command: GroupCommand) -> Result<(), Failure> {
    match command {
        GroupCommand::Add {
            name,
            status,
            description,
        } => {
            let name = group_name(&name)?;
            let status = parse_status(&status)?;
            let store = open(config).await?;
            let creator = operator();
            let g = store
                .add_group(&name, status, &description, &creator)
                .await?;
            println!("created {} ({})", g.name, status_text(g.status));
        }
        GroupCommand::Remove { name } => {
            let name = group_name(&name)?;
            let store = open(config).await?;
            let until = chrono::Utc::now().timestamp() + config.storage.remember_secs();
            let deleted = store.remove_group(name.as_str(), until).await?;
            println!("removed {name} ({deleted} articles deleted)");
        }
        GroupCommand::List(json) => {
            let store = open(config).await?;
            let groups = store.groups().await?;
            if json.json {
                let v: Vec<_> = groups.iter().map(group_json).collect();
                println!("{:#}", serde_json::Value::Array(v));
            } else {
                let width = groups
                    .iter()
                    .map(|g| g.name.len())
                    .max()
                    .unwrap_or(4)
                    .max(4);
                println!("{:width$}  status  articles  low-high", "name");
                for g in &groups {
                    println!(
                        "{:width$}  {:6}  {:8}  {}-{}",
                        g.name, g.status, g.count, g.low, g.high
                    );
                }
            }
        }
        GroupCommand::Show { name, json } => {
            let name = group_name(&name)?;
            let store = open(config).await?;
            let Some(g) = store.group(name.as_str()).await? else {
                return Err(Failure(format!("no such newsgroup: {name}")));
            };
            if json.json {
                println!("{:#}", group_json(&g));
            } else {
                print_group(&g);
            }
        }
        GroupCommand::Set {
            name,
            status,
            description,
        } => {
            let name = group_name(&name)?;
            let status = status.as_deref().map(parse_status).transpose()?;
            if status.is_none() && description.is_none() {
                return Err(Failure(
                    "nothing to change: give --status and/or --description".into(),
                ));
            }
            let store = open(config).await?;
            let g = store
                .set_group(name.as_str(), status, description.as_deref())
                .await?;
            print_group(&g);
        }
        GroupCommand::Import {
            active,
            newsgroups,
            dry_run,
            json,
        } => import_groups(config, active, newsgroups, dry_run, json.json).await?,
    }
    Ok(())
}

async fn backup(config: &Config, file: &std::path::Path, json: bool) -> Result<(), Failure> {
    // The bodies kept apart go to a directory beside it (`store::bodies`).
    let file_bodies = crate::store::bodies::directory(file);
    for taken in [file, file_bodies.as_path()] {
        if taken.exists() {
            return Err(Failure(format!(
                "{} exists: give the backup a new name",
                taken.display()
            )));
        }
    }
    let store = open(config).await?;
    // Written under another name and renamed when whole: an interrupted
    // backup leaves no file that looks like a good one.
    let mut partial = file.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = std::path::PathBuf::from(partial);
    let partial_bodies = crate::store::bodies::directory(&partial);
    let started = std::time::Instant::now();
    let done = store.backup(&partial).await;
    // On disk before it has its name, and the name on disk before the
    // backup is reported done; its bodies have theirs before it does.
    let done = done.map_err(Failure::from).and_then(|()| {
        let synced = std::fs::File::open(&partial).and_then(|f| f.sync_all());
        synced
            .and_then(|()| match partial_bodies.exists() {
                true => std::fs::rename(&partial_bodies, &file_bodies),
                false => Ok(()),
            })
            .and_then(|()| std::fs::rename(&partial, file))
            .and_then(|()| match file.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
                _ => std::fs::File::open(".")?.sync_all(),
            })
            .map_err(|e| Failure(format!("writing {}: {e}", file.display())))
    });
    if let Err(e) = done {
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_dir_all(&partial_bodies);
        return Err(Failure(format!("backup to {} failed: {e}", file.display())));
    }
    let body_bytes = crate::store::bodies::bytes_in(&file_bodies);
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0) + body_bytes;
    let secs = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{:#}",
            json!({"file": file.display().to_string(), "bytes": bytes, "seconds": secs})
        );
    } else {
        println!(
            "backed up {} to {} ({bytes} bytes) in {secs:.1} s",
            config.storage.database.display(),
            file.display()
        );
    }
    Ok(())
}

fn check_config(config: &Config) -> Result<(), Failure> {
    let findings = check::check(config);
    let addrs = |a: &[std::net::SocketAddr]| {
        let v: Vec<String> = a.iter().map(ToString::to_string).collect();
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    println!("listen:        {}", addrs(&config.server.listen));
    match &config.tls.certificate {
        Some(cert) => println!(
            "tls:           {}; NNTPS on {}; STARTTLS {}",
            cert.display(),
            addrs(&config.tls.listen),
            if config.tls.starttls { "on" } else { "off" }
        ),
        None => println!("tls:           off (no certificate)"),
    }
    let db = &config.storage.database;
    match std::fs::metadata(db) {
        Ok(m) => println!("database:      {} ({} bytes)", db.display(), m.len()),
        Err(_) => println!(
            "database:      {} (created at the first start, with {} groups)",
            db.display(),
            config.groups.len()
        ),
    }
    println!(
        "disk:          WAL {} MiB while the server runs; database {}",
        config.storage.wal_size_mib,
        match config.storage.max_size_mib {
            0 => "up to the disk's size".to_owned(),
            mib => format!("up to {mib} MiB"),
        }
    );
    println!("path identity: {}", config.server.path_identity.as_str());
    println!("peers:         {}", config.peers.len());
    for p in &config.peers {
        println!(
            "  {}: {} sends {}",
            p.name.0,
            p.address.as_deref().unwrap_or("receive only,"),
            p.send.0.as_str()
        );
    }
    println!(
        "rules:         {} access, {} control, {} moderator",
        config.access.len(),
        config.control.len(),
        config.moderation.moderators.len()
    );
    for w in &findings.warnings {
        println!("warning: {w}");
    }
    for p in &findings.problems {
        println!("problem: {p}");
    }
    match findings.problems.len() {
        0 => {
            println!("configuration is valid");
            Ok(())
        }
        n => Err(Failure(format!(
            "{n} problem(s): the server would not run as configured"
        ))),
    }
}

/// Skipped lines listed in full before the rest are only counted.
const SKIPPED_SHOWN: usize = 20;

async fn import_groups(
    config: &Config,
    active: Option<std::path::PathBuf>,
    newsgroups: Option<std::path::PathBuf>,
    dry_run: bool,
    json: bool,
) -> Result<(), Failure> {
    if active.is_none() && newsgroups.is_none() {
        return Err(Failure(
            "nothing to import: give --active FILE and/or --newsgroups FILE".into(),
        ));
    }
    let active = match &active {
        Some(path) => Some((
            path,
            import::parse_active(&import::read(path).map_err(Failure)?),
        )),
        None => None,
    };
    let newsgroups = match &newsgroups {
        Some(path) => Some((
            path,
            import::parse_newsgroups(&import::read(path).map_err(Failure)?),
        )),
        None => None,
    };
    let groups: Vec<(&str, char)> = active
        .iter()
        .flat_map(|(_, p)| p.entries.iter().map(|g| (g.name.as_str(), g.status)))
        .collect();
    let descriptions: Vec<(&str, &str)> = newsgroups
        .iter()
        .flat_map(|(_, p)| p.entries.iter().map(|(n, d)| (n.as_str(), d.as_str())))
        .collect();
    let store = open(config).await?;
    let creator = operator();
    let done = store
        .import_groups(&groups, &descriptions, &creator, dry_run)
        .await?;
    let skipped: Vec<(&std::path::PathBuf, &import::Skipped)> = active
        .iter()
        .flat_map(|(path, p)| p.skipped.iter().map(move |s| (*path, s)))
        .chain(
            newsgroups
                .iter()
                .flat_map(|(path, p)| p.skipped.iter().map(move |s| (*path, s))),
        )
        .collect();
    if json {
        let skipped: Vec<_> = skipped
            .iter()
            .map(|(path, s)| json!({"file": path.display().to_string(), "line": s.line, "why": s.why}))
            .collect();
        let v = json!({
            "created": done.created,
            "existing": done.existing,
            "described": done.described,
            "kept": done.kept,
            "not_carried": done.not_carried,
            "skipped": skipped,
            "dry_run": dry_run,
        });
        println!("{v:#}");
        return Ok(());
    }
    for (path, s) in skipped.iter().take(SKIPPED_SHOWN) {
        println!("skipped {}:{}: {}", path.display(), s.line, s.why);
    }
    if skipped.len() > SKIPPED_SHOWN {
        println!(
            "skipped {} more lines (--json lists them all)",
            skipped.len() - SKIPPED_SHOWN
        );
    }
    let would = if dry_run { "would be " } else { "" };
    if active.is_some() {
        println!(
            "groups: {} {would}created, {} here already (left as they are)",
            done.created, done.existing
        );
    }
    if newsgroups.is_some() {
        println!(
            "descriptions: {} {would}set, {} not (the group has its own), {} for groups not carried here",
            done.described, done.kept, done.not_carried
        );
    }
    if dry_run {
        println!("dry run: nothing was changed");
    }
    Ok(())
}

fn peer_config<'a>(
    config: &'a Config,
    name: &str,
) -> Result<&'a crate::config::PeerConfig, Failure> {
    config
        .peers
        .iter()
        .find(|p| p.name.0 == name)
        .ok_or_else(|| Failure(format!("no peer named {name:?} in the configuration")))
}

fn when(t: Option<i64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// The most articles after a peer's cursor that `peer status` reads (their
/// heads) to count only those the peer would be sent: 60,000 articles of
/// 2 KiB took 0.3 s on the 2-core test VM.
const BACKLOG_SCAN: i64 = 200_000;

/// What `peer list` and `peer status` say when there is no peer (text
/// only: `--json` prints an empty list).
const NO_PEERS: &str = "no peers in the configuration: add a [[peer]] entry (see \
     etc/tidings.toml), then `tidings reload` if the server runs";

async fn peer(config: &Config, command: PeerCommand) -> Result<(), Failure> {
    match command {
        PeerCommand::List(json) => {
            if json.json {
                let v: Vec<_> = config
                    .peers
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p.name.0,
                            "path_identity": p.path_identity.as_str(),
                            "address": p.address,
                            "send": p.send.0.as_str(),
                            "accept": p.accept.0.as_str(),
                            "accept_from": p.accept_from.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                            "max_article_size": p.max_article_size,
                            "distributions": p.distributions,
                            "streaming": p.streaming,
                            "window": p.window,
                            "tls": p.tls,
                            "compress": p.compress,
                            "login": p.login,
                            "feed_user": p.feed_user,
                        })
                    })
                    .collect();
                println!("{:#}", serde_json::Value::Array(v));
            } else {
                if config.peers.is_empty() {
                    println!("{NO_PEERS}");
                }
                for p in &config.peers {
                    println!(
                        "{:16} {:24} {:24} send {}",
                        p.name.0,
                        p.path_identity.as_str(),
                        p.address.as_deref().unwrap_or("(receive only)"),
                        p.send.0.as_str()
                    );
                }
            }
        }
        PeerCommand::Status { name, json } => {
            let names: Vec<&str> = match &name {
                Some(n) => vec![peer_config(config, n)?.name.0.as_str()],
                None => config
                    .peers
                    .iter()
                    .filter(|p| p.address.is_some())
                    .map(|p| p.name.0.as_str())
                    .collect(),
            };
            let store = open(config).await?;
            let mut all = Vec::new();
            for n in names {
                let s = store.peer_state(n).await?;
                let peer = peer_config(config, n)?;
                let wants = |head: &[u8], size: usize| {
                    crate::feeds::filter::check_sized(peer, head, size).is_ok()
                };
                let backlog = store
                    .peer_backlog_wanted(n, s.cursor, &wants, BACKLOG_SCAN)
                    .await?;
                all.push((s, backlog));
            }
            if json.json {
                let v: Vec<_> = all
                    .iter()
                    .map(|(s, backlog)| {
                        json!({
                            "name": s.name,
                            "connected": s.connected_at.is_some(),
                            "paused": s.paused,
                            "cursor": s.cursor,
                            "backlog_articles": backlog.articles,
                            "backlog_bytes": backlog.bytes,
                            "backlog_exact": backlog.exact,
                            "offered": s.offered,
                            "accepted": s.accepted,
                            "refused": s.refused,
                            "rejected": s.rejected,
                            "deferred": s.deferred,
                            "rate": s.rate,
                            "last_error": s.last_error,
                            "last_error_at": s.last_error_at,
                        })
                    })
                    .collect();
                println!("{:#}", serde_json::Value::Array(v));
            } else {
                if all.is_empty() {
                    println!(
                        "{}",
                        if config.peers.is_empty() {
                            NO_PEERS
                        } else {
                            "no peer is fed from here: every [[peer]] in the configuration \
                             is receive-only (no address)"
                        }
                    );
                }
                for (s, backlog) in &all {
                    let state = match (s.paused, s.connected_at) {
                        (true, _) => "paused".to_owned(),
                        (false, Some(t)) => format!("connected since {}", when(Some(t))),
                        (false, None) => "not connected".to_owned(),
                    };
                    println!("{}: {state}", s.name);
                    if backlog.exact {
                        println!(
                            "  backlog:  {} articles, {} bytes (cursor {})",
                            backlog.articles, backlog.bytes, s.cursor
                        );
                    } else {
                        println!(
                            "  backlog:  at most {} articles, {} bytes: every article after \
                             its cursor ({}), not only those for it (over {BACKLOG_SCAN} \
                             are not sorted out)",
                            backlog.articles, backlog.bytes, s.cursor
                        );
                    }
                    println!(
                        "  offered {}, accepted {}, refused {}, rejected {}, deferred {}",
                        s.offered, s.accepted, s.refused, s.rejected, s.deferred
                    );
                    println!("  rate:     {:.0} articles/s (last round)", s.rate);
                    if let Some(e) = &s.last_error {
                        // An error from before the connection now up is
                        // history, not trouble: say so.
                        let past = match (s.connected_at, s.last_error_at) {
                            (Some(up), Some(at)) if at <= up && !s.paused => {
                                ", before this connection"
                            }
                            _ => "",
                        };
                        println!("  last error: {e} ({}{past})", when(s.last_error_at));
                    }
                }
            }
        }
        PeerCommand::Pause { name } => set_paused(config, &name, true).await?,
        PeerCommand::Resume { name } => set_paused(config, &name, false).await?,
        PeerCommand::ResetCursor { name, to } => {
            peer_config(config, &name)?;
            let store = open(config).await?;
            store.peer_state(&name).await?;
            let head = store.last_article_id().await?;
            if let Some(to) = to.filter(|to| !(0..=head).contains(to)) {
                return Err(Failure(format!(
                    "--to {to} is outside the article log: 0 (everything stored is sent \
                     again) to {head} (its head: only new articles are sent)"
                )));
            }
            store.reset_peer_cursor(&name, to).await?;
            let s = store.peer_state(&name).await?;
            println!("{name}: cursor now {}", s.cursor);
        }
    }
    Ok(())
}

async fn set_paused(config: &Config, name: &str, paused: bool) -> Result<(), Failure> {
    peer_config(config, name)?;
    let store = open(config).await?;
    store.peer_state(name).await?;
    store.set_peer_paused(name, paused).await?;
    println!("{name}: {}", if paused { "paused" } else { "resumed" });
    Ok(())
}

/// Where a running server keeps its process id: beside its database.
pub fn pid_file(config: &Config) -> std::path::PathBuf {
    let db = &config.storage.database;
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty());
    dir.map_or_else(
        || std::path::PathBuf::from("tidings.pid"),
        |d| d.join("tidings.pid"),
    )
}

fn reload(config: &Config) -> Result<(), Failure> {
    let path = pid_file(config);
    let pid = std::fs::read_to_string(&path)
        .map_err(|e| Failure(format!("no running server ({}: {e})", path.display())))?;
    let pid = pid.trim();
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure(format!(
            "{} does not hold a process id",
            path.display()
        )));
    }
    // A pid file left by a server that was killed may name another
    // program by now: signal only a tidings server.
    if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline"))
        && !cmdline.split(|&b| b == 0).any(|arg| arg == b"serve")
    {
        return Err(Failure(format!(
            "process {pid} (from {}) is not a tidings server: the file is left from one \
             that was killed; start the server",
            path.display()
        )));
    }
    let status = std::process::Command::new("kill")
        .args(["-HUP", pid])
        .status()
        .map_err(|e| Failure(format!("cannot run kill: {e}")))?;
    if !status.success() {
        return Err(Failure(format!("no server running as process {pid}")));
    }
    println!("asked server {pid} to reload its configuration");
    Ok(())
}

/// `[[group]]` entries are read only when the database is first made: an
/// operator who adds one to the file and reloads is told it is not carried,
/// and how to add it, rather than left to find the group missing.
async fn note_groups_not_carried(config: &Config) -> Result<(), Failure> {
    if config.groups.is_empty() || !config.storage.database.exists() {
        return Ok(());
    }
    let store = open(config).await?;
    for g in &config.groups {
        let name = g.name.0.as_str();
        if store.group(name).await?.is_none() {
            println!(
                "note: [[group]] {name} is not carried ([[group]] entries are read only \
                 when the database is first made); `tidings group add {name}` adds it"
            );
        }
    }
    Ok(())
}

/// A user name for AUTHINFO (`auth::is_user_name`).
fn user_name(name: &str) -> Result<&str, Failure> {
    if crate::auth::is_user_name(name) {
        Ok(name)
    } else {
        Err(Failure(format!(
            "invalid user name {name:?}: 1-64 printable characters, no spaces"
        )))
    }
}

/// Reads a new password: twice at a terminal prompt, or the first line of
/// standard input (for scripts).
fn read_new_password(name: &str) -> Result<String, Failure> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))
            .map_err(|e| Failure(format!("cannot read the password: {e}")))?;
        let again = rpassword::prompt_password("again: ")
            .map_err(|e| Failure(format!("cannot read the password: {e}")))?;
        if first != again {
            return Err(Failure("the passwords differ".into()));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure(format!("cannot read the password: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    // AUTHINFO PASS carries it as one argument (RFC 4643 §2.3).
    if password.is_empty() || password.contains(char::is_whitespace) || password.len() > 256 {
        return Err(Failure(
            "a password must be 1-256 characters without spaces (AUTHINFO sends it as one argument)"
                .into(),
        ));
    }
    Ok(password)
}

async fn user(config: &Config, command: UserCommand) -> Result<(), Failure> {
    match command {
        UserCommand::Add { name } => {
            let name = user_name(&name)?;
            let store = open(config).await?;
            if store.user_hash(name).await?.is_some() {
                return Err(Failure(format!("user already exists: {name}")));
            }
            let hash = crate::auth::hash_password(&read_new_password(name)?).map_err(Failure)?;
            store.add_user(name, &hash).await?;
            println!("created user {name}");
        }
        UserCommand::Passwd { name } => {
            let name = user_name(&name)?;
            let store = open(config).await?;
            if store.user_hash(name).await?.is_none() {
                return Err(Failure(format!("no such user: {name}")));
            }
            let hash = crate::auth::hash_password(&read_new_password(name)?).map_err(Failure)?;
            store.set_user_hash(name, &hash).await?;
            println!("changed the password of {name}");
        }
        UserCommand::Remove { name } => {
            let name = user_name(&name)?;
            let store = open(config).await?;
            store.remove_user(name).await?;
            println!("removed user {name}");
        }
        UserCommand::List(json) => {
            let store = open(config).await?;
            let users = store.users().await?;
            if json.json {
                let v: Vec<_> = users
                    .iter()
                    .map(|(n, c)| json!({"name": n, "created": when(Some(*c))}))
                    .collect();
                println!("{:#}", serde_json::Value::Array(v));
            } else {
                if users.is_empty() {
                    println!(
                        "no users: add one with `tidings user add NAME` (readers log in \
                         with AUTHINFO USER/PASS)"
                    );
                }
                for (n, c) in &users {
                    println!("{n:24} created {}", when(Some(*c)));
                }
            }
        }
    }
    Ok(())
}
