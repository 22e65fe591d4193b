//! tidings: a federated Usenet news server on SQLite.
//!
//! # Layout
//!
//! Modules in the order data flows through them (see `shared/DESIGN.md`):
//!
//! - [`config`]: the TOML configuration, loaded and validated once.
//! - [`server`]: the listener: accepts connections, owns limits and shutdown.
//! - [`tls`]: certificates, the plain-or-TLS stream, STARTTLS and NNTPS (RFC 4642).
//! - [`wire`]: bytes <-> values: line framing, dot-stuffing, command parsing,
//!   response encoding, the COMPRESS layer (RFC 8054). Only
//!   `wire::connection` touches a socket.
//! - [`session`]: the per-connection state machine; a command in, a response out.
//! - [`auth`]: password hashes and the failed-login throttle (RFC 4643).
//! - [`article`]: RFC 5536/5537 article checks, injected headers, overview fields.
//! - [`ingest`]: the single writer task with group commit; `submit()` answers
//!   only after the article is durably committed.
//! - [`store`]: the SQLite store, the only SQL in the crate.
//! - [`feeds`]: a feeder per peer, offering new articles from the log.
//! - [`control`]: newgroup and rmgroup control messages, carried out once
//!   stored, as the `[[control]]` rules say.
//! - [`admin`]: the operator's CLI subcommands.

pub mod config;
pub mod server;
pub mod tls;
pub mod wire;
pub mod session;
pub mod auth;
pub mod article;
pub mod ingest;
pub mod store;
pub mod feeds;
pub mod control;
pub mod admin;
