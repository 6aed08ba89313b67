//! invites_rules: the rules behind Prosody's invite modules, in plain Rust.
//!
//! The crate knows nothing about Lua or Prosody (it cannot: mlua is not among its dependencies):
//! it builds invite records, validates tokens, builds and parses `xmpp:` URIs, formats XEP-0082
//! times, plans what storage keys a redemption or a purge must delete and parses the
//! command-line verbs. It never reads the clock, the random source or storage; the caller passes
//! the current time, random bytes and the records it has read.
//!
//! The Lua binding (the `invites-lua` package at the top of the workspace, built as `invites_core.so`) converts Lua tables to these types and back and
//! maps [`Error`] to Prosody's error strings. The Lua shims in `lua/` do all I/O (storage,
//! stanzas, events) and ask it what to do.

#![warn(missing_docs)]

pub mod adhoc;
pub mod check;
pub mod claims;
pub mod datetime;
pub mod error;
pub mod generate;
pub mod invite;
pub mod jid;
pub mod lifecycle;
pub mod migrate;
pub mod net;
pub mod notify;
pub mod ns;
pub mod period;
pub mod plans;
pub mod qr;
pub mod record;
pub mod register;
pub mod reservations;
pub mod roles;
pub mod rooms;
pub mod shell;
pub mod subscription;
pub mod throttle;
pub mod token;
pub mod tree;
pub mod uri;

#[cfg(test)]
mod proptests;

pub use error::{Error, Result};
