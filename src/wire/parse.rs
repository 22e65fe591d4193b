//! nom parsers: one command line (without its CRLF) -> `Command` (RFC 3977 §9).
//! STUB: to be implemented.

use thiserror::Error;

use super::command::Command;

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The verb is not one we know: 500.
    #[error("unknown command")]
    Unknown,
    /// The verb is known but its arguments are wrong: 501, with the reason.
    #[error("{0}")]
    Syntax(String),
}

/// Parses one command line, CRLF already removed.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let _ = line;
    Err(ParseError::Unknown)
}
