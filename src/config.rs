//! The configuration: one TOML file (documented example: `etc/tidings.toml`),
//! loaded and validated once at start-up, then passed down as data.
//!
//! Every field has a default, so an absent file (or an empty one) is a working
//! server on 127.0.0.1:1119 with its database under `./data`. Validation that
//! can be done while deserialising is done there, so a bad value is reported
//! with the file, line and column that hold it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::wire::types::GroupName;
use crate::wire::wildmat::Wildmat;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub limits: Limits,
    pub auth: AuthConfig,
    pub tls: TlsConfig,
    pub expire: ExpireConfig,
    pub cancels: CancelConfig,
    pub moderation: ModerationConfig,
    /// Groups created when the database is first created.
    #[serde(rename = "group")]
    pub groups: Vec<GroupConfig>,
    /// Servers we exchange articles with (RFC 3977 IHAVE, RFC 4644 streaming).
    #[serde(rename = "peer")]
    pub peers: Vec<PeerConfig>,
    /// What to do with newgroup, rmgroup and checkgroups control messages
    /// (INN's control.ctl): the first rule that matches one decides; with
    /// none, it is logged and not carried out.
    #[serde(rename = "control")]
    pub control: Vec<ControlRule>,
    /// Who may read and post what, by client network and user. The first
    /// rule that matches a connection applies; with none, everything is
    /// open (as without rules).
    #[serde(rename = "access")]
    pub access: Vec<AccessRule>,
}

/// One access rule: whom it is for, and what they may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Client networks (CIDR or single IP) it is for; empty: every address.
    #[serde(default)]
    pub networks: Vec<Cidr>,
    /// Users it is for (a wildmat of user names), matched once logged in;
    /// absent: anyone, logged in or not.
    #[serde(default)]
    pub users: Option<FeedPattern>,
    /// Refuse these clients outright: 502 at the greeting.
    #[serde(default)]
    pub deny: bool,
    /// They must log in (AUTHINFO) first; until then, 480.
    #[serde(default)]
    pub login_required: bool,
    /// Newsgroups they may read (wildmat; "" for none).
    #[serde(default = "all_groups")]
    pub read: FeedPattern,
    /// Newsgroups they may post to (wildmat; "" for none: POST is 440).
    #[serde(default = "all_groups")]
    pub post: FeedPattern,
    /// Posts per minute (per user when logged in, else per address); 0: no limit.
    #[serde(default)]
    pub posts_per_minute: u32,
    /// Article bytes served per day (per user or address); 0: no limit.
    #[serde(default)]
    pub download_bytes_per_day: u64,
    /// Whether a configured peer at these addresses may use the transit
    /// commands (IHAVE, streaming); false withholds them (502) without
    /// removing the peer.
    #[serde(default = "yes")]
    pub transit: bool,
}

impl AccessRule {
    /// Whether the rule is for a client at `ip`, logged in as `user`.
    pub fn applies(&self, ip: IpAddr, user: Option<&str>) -> bool {
        let network = self.networks.is_empty() || self.networks.iter().any(|n| n.contains(ip));
        let user = match (&self.users, user) {
            (None, _) => true,
            (Some(w), Some(u)) => w.0.matches(u),
            (Some(_), None) => false,
        };
        network && user
    }

    /// The rule when none is configured: everything open.
    pub fn open() -> AccessRule {
        AccessRule {
            networks: Vec::new(),
            users: None,
            deny: false,
            login_required: false,
            read: all_groups(),
            post: all_groups(),
            posts_per_minute: 0,
            download_bytes_per_day: 0,
            transit: true,
        }
    }
}

/// A peer: a news server that feeds us, that we feed, or both.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Our name for it (admin commands, logs): letters, digits, `.`, `-`, `_`.
    pub name: PeerName,
    /// Its Path identity: articles whose Path holds it are not sent to it.
    pub path_identity: PathIdentity,
    /// `host:port` to connect to when feeding it; absent: we only receive.
    #[serde(default)]
    pub address: Option<String>,
    /// Addresses (CIDR or single IP) it may feed us from.
    #[serde(default)]
    pub accept_from: Vec<Cidr>,
    /// Newsgroups we send it (wildmat; `!` excludes, `@` poisons: an article
    /// cross-posted to a poisoned group is not sent at all).
    #[serde(default = "all_groups")]
    pub send: FeedPattern,
    /// Newsgroups we take from it (same syntax): an article with none of
    /// them, or with a poisoned one, is refused.
    #[serde(default = "all_groups")]
    pub accept: FeedPattern,
    /// Largest article sent to it, in octets (default: no limit beyond ours).
    #[serde(default)]
    pub max_article_size: Option<usize>,
    /// Distributions it takes (an article with a Distribution header is sent
    /// only if one of its values is listed; `!x` excludes x). Empty: all.
    #[serde(default)]
    pub distributions: Vec<String>,
    /// Use RFC 4644 streaming (CHECK/TAKETHIS) when the peer offers it;
    /// otherwise, or when it does not, IHAVE.
    #[serde(default = "yes")]
    pub streaming: bool,
    /// Articles in flight at once on the streaming connection.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Seconds the peer may take to answer one command before the feeder
    /// drops the connection and reconnects.
    #[serde(default = "default_answer_timeout")]
    pub answer_timeout_secs: u64,
    /// Seconds before an article the peer deferred (431/436) is offered again.
    #[serde(default = "default_retry_delay")]
    pub retry_delay_secs: u64,
    /// The longest wait, in seconds, between reconnection attempts (the
    /// wait doubles from one second up to this).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_secs: u64,
    /// Feed it over implicit TLS (NNTPS): `address` is its TLS port.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA certificates its certificate must chain to;
    /// absent: the system's bundle.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// The name its certificate must carry; absent: the host of `address`.
    #[serde(default)]
    pub tls_name: Option<String>,
    /// A user (`tidings user add`) it may log in as (AUTHINFO, RFC 4643)
    /// to feed us from any address, as INN's nnrpd takes IHAVE from a
    /// reader with the `I` permission; `accept_from` may then be empty.
    #[serde(default)]
    pub login: Option<String>,
    /// The user name we log in with before feeding it, for a peer that
    /// wants a login (what INN keeps in passwd.nntp).
    #[serde(default)]
    pub feed_user: Option<String>,
    /// The password for `feed_user`.
    #[serde(default)]
    pub feed_password: Option<Secret>,
    /// Compress the feed (COMPRESS DEFLATE, RFC 8054) when the peer offers
    /// it: text articles take a third or less of the bandwidth, for CPU on
    /// both ends.
    #[serde(default)]
    pub compress: bool,
}

/// A password in the configuration: never shown by `Debug`, so it cannot
/// reach a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Whether `address` is what a feeder can connect to: `host:port`, an
/// IPv6 address in brackets (`[2001:db8::1]:119`). Says what is wrong.
fn check_host_port(address: &str) -> Result<(), String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("needs a port, as in \"{address}:119\""));
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("needs a host name or address before its port".into());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("is an IPv6 address: put it in brackets, as in \"[2001:db8::1]:119\"".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("has no valid port ({port:?}: 1 to 65535)")),
    }
}

/// Whether `s` can be one AUTHINFO argument: not empty, no white space
/// or control characters (RFC 4643 §2.3: a user name or password is one
/// token of printable UTF-8).
fn is_authinfo_token(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn default_answer_timeout() -> u64 {
    60
}

fn default_retry_delay() -> u64 {
    30
}

fn default_max_backoff() -> u64 {
    60
}

fn yes() -> bool {
    true
}

/// 256: a tidings peer floods a backlog at 45-47k articles/s with 64 in
/// flight and 61k/s with 256 (2 KiB, one connection), faster than it
/// ingests; answers are read as they come, so a slow peer only waits.
fn default_window() -> usize {
    256
}

fn all_groups() -> FeedPattern {
    FeedPattern(Wildmat::parse("*", true).unwrap_or_else(|_| unreachable!()))
}

/// A peer name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerName(pub String);

impl<'de> Deserialize<'de> for PeerName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if ok {
            Ok(PeerName(s))
        } else {
            Err(serde::de::Error::custom(
                "a peer name is 1-64 letters, digits, '.', '-' or '_'",
            ))
        }
    }
}

/// A newsfeeds-style wildmat (with INN's `@` poison), checked as it is read.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPattern(pub Wildmat);

impl<'de> Deserialize<'de> for FeedPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // "" means nothing at all: a pattern that no name matches.
        let s = if s.is_empty() { "!*".to_owned() } else { s };
        Wildmat::parse(&s, true)
            .map(FeedPattern)
            .map_err(serde::de::Error::custom)
    }
}

impl FeedPattern {
    /// Whether an article in `groups` passes: at least one group matches
    /// and none is poisoned (INN newsfeeds(5) semantics).
    pub fn wants<'a>(&self, groups: impl IntoIterator<Item = &'a str>) -> bool {
        let mut any = false;
        for g in groups {
            if self.0.poisoned(g) {
                return false;
            }
            any |= self.0.matches(g);
        }
        any
    }
}

/// An IP network in CIDR notation (`192.0.2.0/24`, `::1/128`), or one
/// address (a full-length prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

impl std::fmt::Display for Cidr {
    /// As written in the configuration: a single address without its
    /// full-length prefix.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Addresses to listen on for plain NNTP.
    pub listen: Vec<SocketAddr>,
    /// Our name in Path headers (RFC 5537 §3.2.1), also used in Xref.
    pub path_identity: PathIdentity,
    /// Right-hand side of message-ids we generate.
    pub domain: PathIdentity,
    /// Text of LIST MOTD (RFC 6048 §2.5); empty: no MOTD.
    pub motd: String,
    /// Whether readers may POST (greeting 200 vs 201).
    pub posting: bool,
    /// Groups a new reader is advised to subscribe to (LIST SUBSCRIPTIONS).
    pub subscriptions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The SQLite database file; its directory is created if missing.
    pub database: PathBuf,
    /// SQLite `synchronous` in WAL mode: "full" (acknowledged articles survive
    /// a machine crash) or "normal" (they survive a server crash only).
    pub synchronous: Synchronous,
    /// The most articles the writer puts in one transaction.
    pub max_batch_articles: usize,
    /// The most article bytes the writer puts in one transaction.
    pub max_batch_bytes: usize,
    /// Reader connections to the database.
    pub read_connections: u32,
    /// SQLite page cache of each reader connection, in KiB.
    pub read_cache_kib: u32,
    /// SQLite page cache of the writer, in KiB: must hold a whole batch.
    pub write_cache_kib: u32,
    /// Bytes of the database each reader maps into memory (SQLite
    /// `mmap_size`); 0 turns mmap off.
    pub mmap_size: u64,
    /// Days a refused or expired message-id is remembered, so a peer that
    /// offers it again is told no at once.
    pub remember_days: u32,
    /// Microseconds the writer, and a session that is alone in waiting for
    /// it (a lone submitter, or a streamer owed few answers), keep polling
    /// before they sleep; 0: sleep at once.
    pub spin_micros: u32,
    /// The most message-ids of new articles the writer keeps in memory
    /// before it merges them into the history index in message-id order:
    /// it keeps an eighth of history's length, at least 16,384 (see
    /// `store::tail::merge_length`).
    pub history_tail_ids: usize,
    /// The most the database may grow to, in MiB (SQLite `max_page_count`
    /// on the writer); 0: no limit but the disk's. A full database refuses
    /// new articles (441, 436, or 400 to a streaming peer, which offers
    /// them again later) and serves everything it holds.
    pub max_size_mib: u64,
    /// The size of the write-ahead log file, in MiB: written in advance at
    /// start, and used round (it starts again from its beginning when
    /// three quarters are used; see `ingest::checkpoint`).
    pub wal_size_mib: u64,
    /// An article whose body has at least this many octets has its body
    /// written once, into a segment file beside the database
    /// (`store::bodies`), instead of into the WAL and then the database;
    /// 0: every body stays in the database. Only with `synchronous =
    /// full`.
    pub body_min_bytes: usize,
    /// The size of a body segment file, in MiB.
    pub body_segment_mib: u64,
    /// At start, the database file is made at least this many MiB long,
    /// the room as free pages that new articles then take (as INN's CNFS
    /// buffers are made whole in advance); 0: it grows as articles come.
    pub preallocate_mib: u64,
    /// Where the writer thread runs: "auto" (on the CPUs that take the
    /// database disk's completion interrupts, when they are fewer than
    /// the server's; see `ingest::placement`), "off", or a CPU list
    /// ("1", "0,2-3").
    pub pin_writer: PinWriter,
}

/// `storage.pin_writer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinWriter {
    Auto,
    Off,
    Cpus(crate::ingest::placement::Cpus),
}

impl<'de> Deserialize<'de> for PinWriter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "auto" => Ok(PinWriter::Auto),
            "off" => Ok(PinWriter::Off),
            list => match crate::ingest::placement::Cpus::parse_list(list) {
                Some(cpus) if !cpus.is_empty() => Ok(PinWriter::Cpus(cpus)),
                _ => Err(serde::de::Error::custom(format!(
                    "pin_writer must be \"auto\", \"off\" or a list of CPUs 0-63 (\"1\", \"0,2-3\"), not {list:?}"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections served at once; the next is answered 400 and closed.
    pub max_connections: usize,
    /// Longest command line accepted, in octets including CRLF (RFC 3977 §3.1: 512).
    pub max_line_length: usize,
    /// Largest article accepted, in octets.
    pub max_article_size: usize,
    /// Seconds a connection may be idle before it is closed (RFC 3977 §3.1: at least 180).
    pub idle_timeout_secs: u64,
    /// Bytes of responses buffered for a client before we wait for it to read.
    pub max_output_buffer: usize,
    /// Connections one address may hold at once; one more is answered 400.
    pub max_connections_per_address: usize,
    /// Header fields an article may have; more is refused (441/437/439).
    pub max_header_count: usize,
    /// Seconds a client may take to finish a command line once it has
    /// begun it (a client trickling bytes is cut off, not kept for the
    /// whole idle timeout).
    pub command_timeout_secs: u64,
    /// Connections that may have COMPRESS (RFC 8054) active at once; one
    /// more is told 403. Each holds ~500 KiB of DEFLATE state. 0: COMPRESS
    /// is not offered.
    pub max_compressed_connections: usize,
}

/// Logging in (RFC 4643 AUTHINFO).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether readers must log in before reading or posting (480 until
    /// they do). Configured peers are recognised by address instead.
    pub required: bool,
    /// Networks whose unencrypted connections may send a password. Others
    /// are told 483 (RFC 4643 §2.2: use TLS first), so passwords never
    /// cross the network in clear.
    pub plaintext_from: Vec<Cidr>,
    /// Failed logins an address may make in a minute; past that, AUTHINFO
    /// answers 481 without trying the password.
    pub max_failures_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            required: false,
            plaintext_from: vec![
                Cidr {
                    addr: IpAddr::from([127, 0, 0, 0]),
                    prefix: 8,
                },
                Cidr {
                    addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
            max_failures_per_minute: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: GroupNameConfig,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_status")]
    pub status: GroupStatusConfig,
}

fn default_status() -> GroupStatusConfig {
    GroupStatusConfig('y')
}

/// A newsgroup name, checked as it is read.
#[derive(Debug, Clone)]
pub struct GroupNameConfig(pub GroupName);

impl<'de> Deserialize<'de> for GroupNameConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GroupName::try_from(s.as_str())
            .map(GroupNameConfig)
            .map_err(serde::de::Error::custom)
    }
}

/// A group status: `y` (posting allowed), `n` (no posting), `m` (moderated).
#[derive(Debug, Clone, Copy)]
pub struct GroupStatusConfig(pub char);

impl<'de> Deserialize<'de> for GroupStatusConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "y" | "n" | "m" => Ok(GroupStatusConfig(s.as_bytes()[0] as char)),
            _ => Err(serde::de::Error::custom(
                "group status must be \"y\", \"n\" or \"m\"",
            )),
        }
    }
}

/// A Path identity or domain: a hostname-like token (RFC 5536 §3.1.6
/// path-identity: letters, digits, `-`, `.`, `_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathIdentity(pub String);

impl PathIdentity {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for PathIdentity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PathIdentity::try_from(s).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<String> for PathIdentity {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, &'static str> {
        let ok = !s.is_empty()
            && s.len() <= 255
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            && !s.starts_with('.')
            && !s.ends_with('.');
        if ok {
            Ok(PathIdentity(s))
        } else {
            Err("must be a host name: letters, digits, '-', '.' and '_'")
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            limits: Limits::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            expire: ExpireConfig::default(),
            cancels: CancelConfig::default(),
            moderation: ModerationConfig::default(),
            groups: vec![
                starter("local.general", "Local general discussion"),
                starter("local.test", "Local test postings"),
                starter("local.announce", "Announcements about this server"),
                control("control", "Control messages (no cancels)"),
                control("control.cancel", "Cancel messages"),
            ],
            peers: Vec::new(),
            control: Vec::new(),
            access: Vec::new(),
        }
    }
}

fn starter(name: &str, description: &str) -> GroupConfig {
    GroupConfig {
        // The names above are valid; a failure here is a bug caught by tests.
        name: GroupNameConfig(GroupName::try_from(name).unwrap_or_else(|_| unreachable!())),
        description: description.to_owned(),
        status: default_status(),
    }
}

/// A group of control messages: filed there by the server, not posted to.
fn control(name: &str, description: &str) -> GroupConfig {
    GroupConfig {
        status: GroupStatusConfig('n'),
        ..starter(name, description)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1119))],
            path_identity: PathIdentity("tidings.local".to_owned()),
            domain: PathIdentity("tidings.local".to_owned()),
            motd: String::new(),
            posting: true,
            subscriptions: vec!["local.general".to_owned(), "local.announce".to_owned()],
        }
    }
}

impl StorageConfig {
    /// `remember_days` in seconds.
    pub fn remember_secs(&self) -> i64 {
        i64::from(self.remember_days) * 86_400
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            database: PathBuf::from("data/tidings.db"),
            synchronous: Synchronous::Full,
            max_batch_articles: 1000,
            max_batch_bytes: 8 << 20,
            read_connections: 4,
            read_cache_kib: 2048,
            write_cache_kib: 16384,
            mmap_size: 0,
            remember_days: 11,
            spin_micros: 400,
            history_tail_ids: 262_144,
            max_size_mib: 0,
            wal_size_mib: 160,
            body_min_bytes: 4096,
            body_segment_mib: 64,
            preallocate_mib: 0,
            pin_writer: PinWriter::Auto,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1000,
            max_line_length: 512,
            max_article_size: 1 << 20,
            idle_timeout_secs: 600,
            max_output_buffer: 256 << 10,
            max_connections_per_address: 128,
            max_header_count: 200,
            command_timeout_secs: 30,
            max_compressed_connections: 100,
        }
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and validates a configuration text. The error names the line
    /// and the reason.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        if l.max_line_length < 512 {
            return Err("limits.max_line_length must be at least 512 (RFC 3977 §3.1)".into());
        }
        if l.max_article_size < 1024 {
            return Err("limits.max_article_size must be at least 1024".into());
        }
        if l.idle_timeout_secs < 180 {
            return Err("limits.idle_timeout_secs must be at least 180 (RFC 3977 §3.1)".into());
        }
        if l.command_timeout_secs == 0 {
            return Err("limits.command_timeout_secs must be at least 1".into());
        }
        if l.max_connections_per_address == 0 || l.max_header_count == 0 {
            return Err(
                "limits.max_connections_per_address and limits.max_header_count must be at least 1"
                    .into(),
            );
        }
        if l.max_connections == 0 {
            return Err("limits.max_connections must be at least 1".into());
        }
        if self.storage.max_batch_articles == 0
            || self.storage.read_connections == 0
            || self.storage.history_tail_ids == 0
            || self.storage.wal_size_mib == 0
            || self.storage.body_segment_mib == 0
        {
            return Err("storage.max_batch_articles, storage.read_connections, \
                 storage.history_tail_ids, storage.wal_size_mib and \
                 storage.body_segment_mib must be at least 1"
                .into());
        }
        if self.server.listen.is_empty() {
            return Err("server.listen must name at least one address".into());
        }
        self.tls.validate()?;
        self.expire.validate()?;
        let mut names = std::collections::HashSet::new();
        for p in &self.peers {
            if !names.insert(&p.name) {
                return Err(format!("peer {:?} is defined twice", p.name.0));
            }
            if let Some(address) = &p.address
                && let Err(why) = check_host_port(address)
            {
                return Err(format!("peer {}: address {address:?} {why}", p.name.0));
            }
            if p.window == 0 || p.window > 10_000 {
                return Err(format!("peer {}: window must be 1 to 10000", p.name.0));
            }
            if p.answer_timeout_secs == 0 || p.max_backoff_secs == 0 {
                return Err(format!(
                    "peer {}: answer_timeout_secs and max_backoff_secs must be at least 1",
                    p.name.0
                ));
            }
            if p.path_identity == self.server.path_identity {
                return Err(format!(
                    "peer {}: its path_identity is our own ({})",
                    p.name.0,
                    p.path_identity.as_str()
                ));
            }
            // The login is one of our users, so it follows their rule.
            if p.login
                .as_deref()
                .is_some_and(|l| !crate::auth::is_user_name(l))
            {
                return Err(format!(
                    "peer {}: login must be a user name: 1-64 printable characters, no spaces",
                    p.name.0
                ));
            }
            let tokens = [
                ("feed_user", p.feed_user.as_deref()),
                (
                    "feed_password",
                    p.feed_password.as_ref().map(|s| s.0.as_str()),
                ),
            ];
            for (key, value) in tokens {
                if value.is_some_and(|v| !is_authinfo_token(v)) {
                    return Err(format!(
                        "peer {}: {key} must be one word of printable characters",
                        p.name.0
                    ));
                }
            }
            if p.feed_password.is_some() && p.feed_user.is_none() {
                return Err(format!("peer {}: feed_password needs feed_user", p.name.0));
            }
        }
        let mut logins = std::collections::HashSet::new();
        for p in &self.peers {
            if let Some(login) = &p.login
                && !logins.insert(login)
            {
                return Err(format!(
                    "peer {}: login {login:?} is another peer's login too",
                    p.name.0
                ));
            }
        }
        Ok(())
    }
}

/// Expiry: how long articles are kept, by newsgroup, and how often the
/// running server expires them (INN's expire.ctl and news.daily, in one).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpireConfig {
    /// Seconds between the running server's expiry runs; 0 leaves expiry
    /// to `tidings expire` (from cron, say).
    pub interval_secs: u64,
    /// Days an article is kept when no rule names its group; 0 keeps it
    /// for ever.
    pub default_days: f64,
    /// Retention by newsgroup: the first rule whose pattern matches a
    /// group sets its days. An article cross-posted to several groups is
    /// kept as long as the longest of them.
    #[serde(rename = "rule")]
    pub rules: Vec<RetentionRule>,
}

/// Cancels and supersedes (RFC 5537 §5.3, §5.4) and Cancel-Lock (RFC
/// 8315).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CancelConfig {
    /// Which withdrawals are carried out here; every cancel is stored and
    /// flooded on whatever this says.
    pub process: CancelPolicy,
    /// Whether a logged-in user's posts get a Cancel-Lock, and their
    /// cancels and superseding articles the matching Cancel-Key.
    pub lock_posts: bool,
}

impl Default for CancelConfig {
    fn default() -> Self {
        CancelConfig {
            process: CancelPolicy::RequireAuth,
            lock_posts: true,
        }
    }
}

/// One `[[control]]` rule: which group control messages (RFC 5537 §5.2,
/// §5.3) from whom, about which groups, and what to do with them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlRule {
    /// The kinds it is for: "newgroup", "rmgroup", "checkgroups", or
    /// "all".
    pub messages: Vec<ControlKind>,
    /// A wildmat of the sender's address (of Sender, else From), in lower
    /// case, e.g. "group-admin@example.com" or "*@example.com". Anyone can
    /// write any From: trust it only on a network of servers you know.
    pub from: FeedPattern,
    /// A wildmat of the group the message creates or removes; absent:
    /// every group.
    #[serde(default = "all_groups")]
    pub groups: FeedPattern,
    pub action: ControlAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlKind {
    Newgroup,
    Rmgroup,
    Checkgroups,
    All,
}

/// What a `[[control]]` rule does (INN's control.ctl actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlAction {
    /// Carry it out, and log it.
    Doit,
    /// Log what it asks for, and do nothing.
    Log,
    /// Do nothing, quietly.
    Drop,
}

impl ControlRule {
    /// Whether the rule is for a `kind` message from `sender` about `group`.
    pub fn matches(&self, kind: ControlKind, sender: &str, group: &str) -> bool {
        (self.messages.contains(&kind) || self.messages.contains(&ControlKind::All))
            && self.from.0.matches(&sender.to_ascii_lowercase())
            && self.groups.0.matches(group)
    }
}

/// Posts to moderated groups (RFC 5537 §3.5.1): one without an Approved
/// header is mailed to the group's moderator instead of being stored, as
/// INN's nnrpd does with its moderators file and `mta`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModerationConfig {
    /// Who moderates what: the first entry whose wildmat matches the group.
    #[serde(rename = "moderator")]
    pub moderators: Vec<Moderator>,
    /// The program that mails an article, and its arguments; the
    /// moderator's address is added as the last argument and the article
    /// comes on its standard input.
    pub mta: Vec<String>,
}

impl Default for ModerationConfig {
    fn default() -> Self {
        ModerationConfig {
            moderators: Vec::new(),
            mta: ["/usr/sbin/sendmail", "-oi", "-oem"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

/// A line of INN's moderators file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moderator {
    /// A wildmat of groups.
    pub groups: FeedPattern,
    /// Where their posts go; `%s` stands for the group's name with its
    /// dots made dashes (`comp.lang.rust` -> `comp-lang-rust`), as in INN.
    pub address: String,
}

impl ModerationConfig {
    /// The moderator's address for `group`, if any entry names it.
    pub fn moderator_of(&self, group: &str) -> Option<String> {
        let m = self.moderators.iter().find(|m| m.groups.0.matches(group))?;
        Some(m.address.replace("%s", &group.replace('.', "-")))
    }
}

/// INN's `docancels`, with its names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CancelPolicy {
    /// Only an article with a Cancel-Lock is withdrawn, and only by a
    /// cancel (or superseding article) with a key that opens it.
    RequireAuth,
    /// As `require-auth` for an article with a Cancel-Lock; one without
    /// is withdrawn by any cancel.
    Auth,
    /// Every cancel and supersede is carried out, even forged ones; the
    /// target of a cancel that comes before its article is remembered, so
    /// the article is refused when it comes.
    All,
    /// None is carried out.
    None,
}

/// How long articles of the groups matching `groups` are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// A wildmat of newsgroups (`!` excludes).
    pub groups: FeedPattern,
    /// Days; 0 keeps them for ever. Fractions are allowed (0.5: 12 hours).
    pub days: f64,
}

impl Default for ExpireConfig {
    fn default() -> Self {
        ExpireConfig {
            interval_secs: 3600,
            default_days: 0.0,
            rules: Vec::new(),
        }
    }
}

impl ExpireConfig {
    /// Seconds articles of `group` are kept; `None`: for ever.
    pub fn keep_secs(&self, group: &str) -> Option<i64> {
        let days = self
            .rules
            .iter()
            .find(|r| r.groups.0.matches(group))
            .map_or(self.default_days, |r| r.days);
        (days > 0.0).then(|| (days * 86_400.0).ceil() as i64)
    }

    fn validate(&self) -> Result<(), String> {
        let days = std::iter::once(self.default_days).chain(self.rules.iter().map(|r| r.days));
        for d in days {
            if !d.is_finite() || !(0.0..=36_500.0).contains(&d) {
                return Err(format!(
                    "expire: days must be from 0 (for ever) to 36500, not {d}"
                ));
            }
        }
        Ok(())
    }
}

/// TLS (RFC 4642 STARTTLS on the plain listeners, implicit TLS on its own).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. With `key`, TLS is offered;
    /// without, neither STARTTLS nor NNTPS. Read again on reload.
    pub certificate: Option<PathBuf>,
    /// PEM private key of the certificate.
    pub key: Option<PathBuf>,
    /// Addresses for implicit TLS (NNTPS; 563 is its port).
    pub listen: Vec<SocketAddr>,
    /// Whether the plain listeners offer STARTTLS.
    pub starttls: bool,
    /// Seconds a client may take to complete its TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Whether COMPRESS (RFC 8054) is offered on encrypted connections.
    /// Compressing under TLS lets someone who watches the sizes of what
    /// passes learn about it (RFC 8054 §7); turn this off where private
    /// groups are read next to public ones.
    pub compress: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificate: None,
            key: None,
            listen: Vec::new(),
            starttls: true,
            handshake_timeout_secs: 30,
            compress: true,
        }
    }
}

impl TlsConfig {
    fn validate(&self) -> Result<(), String> {
        if self.certificate.is_some() != self.key.is_some() {
            return Err("tls.certificate and tls.key go together".into());
        }
        if !self.listen.is_empty() && self.certificate.is_none() {
            return Err("tls.listen needs tls.certificate and tls.key".into());
        }
        if self.handshake_timeout_secs == 0 {
            return Err("tls.handshake_timeout_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// Turns a toml error into "line N, column M: reason".
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let reason = e.message().trim().to_owned();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {reason}")
        }
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../etc/tidings.toml");
        let config = Config::parse(text).expect("etc/tidings.toml must be valid");
        assert!(!config.groups.is_empty());
    }

    #[test]
    fn the_documented_peer_example_parses_when_uncommented() {
        let text = include_str!("../etc/tidings.toml");
        let start = text.find("\n# [[peer]]\n").expect("a peer example");
        let example: String = text[start..]
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with("[[") || l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let config = Config::parse(&example).expect("the peer example must be valid");
        assert_eq!(config.peers.len(), 1);
        assert_eq!(config.peers[0].window, 256);
    }

    /// The part of etc/tidings.toml from the line `from` to the line
    /// `until` (or the end), its examples uncommented: table headers and
    /// settings only, parsed.
    fn documented(from: &str, until: Option<&str>) -> Config {
        let text = include_str!("../etc/tidings.toml");
        let start = text.find(&format!("\n{from}\n")).expect("the example");
        let end = until.map_or(text.len(), |u| {
            start + text[start..].find(&format!("\n{u}")).expect("its end")
        });
        let example: String = text[start..end]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        Config::parse(&example).unwrap_or_else(|e| panic!("the example at {from}: {e}"))
    }

    #[test]
    fn the_documented_access_example_parses_when_uncommented() {
        let config = documented("# [[access]]", None);
        assert_eq!(config.access.len(), 3);
        assert!(config.access[0].deny);
        assert!(config.access[2].login_required);
    }

    #[test]
    fn the_documented_expire_example_parses_when_uncommented() {
        let config = documented("[expire]", Some("# Groups created"));
        let e = &config.expire;
        assert_eq!(e.rules.len(), 4);
        assert_eq!(e.keep_secs("local.general"), None);
        assert_eq!(e.keep_secs("control.cancel"), Some(7 * 86_400));
        assert_eq!(e.keep_secs("control"), Some(7 * 86_400));
        assert_eq!(e.keep_secs("alt.binaries.misc"), Some(3 * 86_400));
        assert_eq!(e.keep_secs("alt.binaries.sounds.mp3"), Some(30 * 86_400));
        assert_eq!(e.keep_secs("comp.lang.rust"), Some(30 * 86_400));
    }

    #[test]
    fn the_documented_control_example_parses_when_uncommented() {
        let config = documented("# [[control]]", Some("# Groups created"));
        assert_eq!(config.control.len(), 2);
        let admin = "group-admin@example.com";
        assert!(config.control[0].matches(ControlKind::Rmgroup, admin, "corp.old"));
        assert_eq!(config.control[1].action, ControlAction::Log);
    }

    #[test]
    fn retention_is_the_first_matching_rule_or_the_default() {
        let config = Config::parse(
            "[expire]\ndefault_days = 0.5\n\
             [[expire.rule]]\ngroups = \"comp.*\"\ndays = 0\n\
             [[expire.rule]]\ngroups = \"*\"\ndays = 2\n",
        )
        .expect("valid");
        assert_eq!(config.expire.keep_secs("comp.lang.c"), None);
        assert_eq!(config.expire.keep_secs("misc.test"), Some(2 * 86_400));
        let default = Config::parse("[expire]\ndefault_days = 0.5\n").expect("valid");
        assert_eq!(default.expire.keep_secs("misc.test"), Some(43_200));
        assert_eq!(Config::default().expire.keep_secs("misc.test"), None);
        for bad in ["-1", "nan", "inf", "40000"] {
            let err = Config::parse(&format!("[expire]\ndefault_days = {bad}\n")).unwrap_err();
            assert!(err.contains("expire"), "{bad}: {err}");
        }
    }

    #[test]
    fn control_rules_match_kind_sender_and_group() {
        let config = Config::parse(
            "[[control]]\nmessages = [\"newgroup\"]\nfrom = \"*@example.com\"\n\
             groups = \"corp.*,!corp.secret\"\naction = \"doit\"\n\
             [[control]]\nmessages = [\"all\"]\nfrom = \"*\"\naction = \"drop\"\n",
        )
        .expect("rules");
        let (doit, drop) = (&config.control[0], &config.control[1]);
        assert_eq!(doit.action, ControlAction::Doit);
        assert!(doit.matches(ControlKind::Newgroup, "Admin@Example.com", "corp.x"));
        assert!(!doit.matches(ControlKind::Rmgroup, "admin@example.com", "corp.x"));
        assert!(!doit.matches(ControlKind::Newgroup, "admin@example.org", "corp.x"));
        assert!(!doit.matches(ControlKind::Newgroup, "admin@example.com", "corp.secret"));
        assert!(drop.matches(ControlKind::Checkgroups, "x@y", ""));
        let err =
            Config::parse("[[control]]\nmessages = [\"all\"]\nfrom = \"*\"\naction = \"yes\"\n")
                .unwrap_err();
        assert!(err.starts_with("line 4"), "{err}");
    }

    #[test]
    fn moderators_are_found_as_in_inns_moderators_file() {
        let config = Config::parse(
            "[moderation]\nmta = [\"/bin/true\"]\n\
             [[moderation.moderator]]\ngroups = \"local.announce\"\naddress = \"ann@example.com\"\n\
             [[moderation.moderator]]\ngroups = \"comp.*\"\naddress = \"%s@mod.example\"\n",
        )
        .expect("moderation");
        let m = &config.moderation;
        assert_eq!(m.mta, ["/bin/true"]);
        assert_eq!(
            m.moderator_of("local.announce").as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(
            m.moderator_of("comp.lang.rust").as_deref(),
            Some("comp-lang-rust@mod.example")
        );
        assert_eq!(m.moderator_of("rec.arts"), None);
        assert_eq!(Config::default().moderation.mta[0], "/usr/sbin/sendmail");
    }

    #[test]
    fn an_empty_file_is_the_default() {
        let config = Config::parse("").expect("empty config");
        assert_eq!(config.limits.max_line_length, 512);
        let groups: Vec<_> = config.groups.iter().map(|g| g.name.0.as_str()).collect();
        assert_eq!(
            groups,
            [
                "local.general",
                "local.test",
                "local.announce",
                "control",
                "control.cancel"
            ]
        );
        assert_eq!(config.cancels.process, CancelPolicy::RequireAuth);
        assert!(config.cancels.lock_posts);
    }

    #[test]
    fn a_bad_value_names_its_line() {
        let err = Config::parse("[server]\n\nlisten = [\"nonsense\"]\n").unwrap_err();
        assert!(err.starts_with("line 3"), "{err}");
        let err = Config::parse("[server]\npath_identity = \"bad name!\"\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        assert!(err.contains("host name"), "{err}");
    }

    #[test]
    fn pin_writer_is_auto_off_or_a_cpu_list() {
        use crate::ingest::placement::Cpus;
        let pin = |v: &str| Config::parse(&format!("[storage]\npin_writer = {v:?}\n"));
        assert_eq!(Config::default().storage.pin_writer, PinWriter::Auto);
        assert_eq!(
            pin("auto").map(|c| c.storage.pin_writer),
            Ok(PinWriter::Auto)
        );
        assert_eq!(pin("off").map(|c| c.storage.pin_writer), Ok(PinWriter::Off));
        assert_eq!(
            pin("0,2-3").map(|c| c.storage.pin_writer),
            Ok(PinWriter::Cpus(Cpus(0b1101)))
        );
        for bad in ["", "x", "64", "3-1", "on"] {
            let err = pin(bad).unwrap_err();
            assert!(err.starts_with("line 2"), "{bad}: {err}");
            assert!(err.contains("pin_writer must be"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = Config::parse("[limits]\nmax_conections = 5\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("max_conections"), "{err}");
    }

    #[test]
    fn peers_parse_with_patterns_and_networks() {
        let config = Config::parse(
            "[[peer]]\nname = \"hub\"\npath_identity = \"hub.example\"\n\
             address = \"127.0.0.1:1190\"\naccept_from = [\"127.0.0.0/8\", \"::1\"]\n\
             send = \"comp.*,!comp.secret.*,@alt.bad.*\"\n",
        )
        .expect("valid");
        let p = &config.peers[0];
        assert!(p.accept_from[0].contains("127.1.2.3".parse().unwrap()));
        assert!(p.accept_from[1].contains("::1".parse().unwrap()));
        assert!(!p.accept_from[0].contains("10.0.0.1".parse().unwrap()));
        assert!(p.accept_from[0].contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(p.send.wants(["comp.lang.rust"]));
        assert!(!p.send.wants(["comp.secret.x"]));
        assert!(p.send.wants(["comp.secret.x", "comp.lang.c"]));
        assert!(!p.send.wants(["comp.lang.c", "alt.bad.spam"]));
        assert!(p.accept.wants(["anything.at.all"]));
        assert!(p.streaming);
        assert_eq!(
            (
                p.answer_timeout_secs,
                p.retry_delay_secs,
                p.max_backoff_secs
            ),
            (60, 30, 60)
        );
        let err = Config::parse(
            "[[peer]]\nname = \"x\"\npath_identity = \"x.example\"\nanswer_timeout_secs = 0\n",
        )
        .unwrap_err();
        assert!(err.contains("answer_timeout_secs"), "{err}");
    }

    #[test]
    fn a_bad_peer_is_refused_with_its_line() {
        let err = Config::parse(
            "[[peer]]\nname = \"hub\"\npath_identity = \"hub.example\"\naccept_from = [\"10.0.0.0/33\"]\n",
        )
        .unwrap_err();
        assert!(err.starts_with("line 4"), "{err}");
        let err = Config::parse("[[peer]]\nname = \"a\"\npath_identity = \"tidings.local\"\n")
            .unwrap_err();
        assert!(err.contains("our own"), "{err}");
    }

    #[test]
    fn a_peer_address_names_a_host_and_a_port() {
        let peer = |rest: &str| {
            Config::parse(&format!(
                "[[peer]]\nname = \"hub\"\npath_identity = \"hub.example\"\n{rest}"
            ))
        };
        for good in ["news.hub.example:119", "192.0.2.7:433", "[2001:db8::1]:119"] {
            let config = peer(&format!("address = \"{good}\"\n")).expect(good);
            assert_eq!(config.peers[0].address.as_deref(), Some(good));
        }
        for (bad, says) in [
            ("news.hub.example", "needs a port"),
            (":119", "needs a host"),
            ("2001:db8::1:119", "brackets"),
            ("news.hub.example:0", "no valid port"),
            ("news.hub.example:nntp", "no valid port"),
            ("news hub:119", "needs a host"),
        ] {
            let err = peer(&format!("address = \"{bad}\"\n")).unwrap_err();
            assert!(
                err.contains("peer hub: address") && err.contains(says),
                "{bad}: {err}"
            );
        }
        let twice = "[[peer]]\nname = \"hub\"\npath_identity = \"a.example\"\n\
                     [[peer]]\nname = \"hub\"\npath_identity = \"b.example\"\n";
        assert!(Config::parse(twice).unwrap_err().contains("defined twice"));
        let err = peer("window = 0\n").unwrap_err();
        assert!(err.contains("window must be 1 to 10000"), "{err}");
        let err =
            Config::parse("[[peer]]\nname = \"a b\"\npath_identity = \"x.example\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_bad_group_is_refused() {
        let err = Config::parse("[[group]]\nname = \"bad..name\"\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
