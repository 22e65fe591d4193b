//! Bad input never hurts the server or other clients.

mod common;
