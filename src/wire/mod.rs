//! The wire: NNTP bytes <-> typed values (RFC 3977 §3). Everything here is
//! pure except `connection`, the one place that reads and writes a socket.

pub mod codes;
pub mod command;
pub mod connection;
pub mod deflate;
pub mod dot;
pub mod parse;
pub mod response;
pub mod types;
pub mod wildmat;
