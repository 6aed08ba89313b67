//! invites_core: the rules behind Prosody's invite modules, as a Lua module.
//!
//! The crate has two halves. Everything except [`lua_api`] is a plain Rust library that knows
//! nothing about Lua or Prosody: it builds invite records, validates tokens, builds and parses
//! `xmpp:` URIs, formats XEP-0082 times, plans what storage keys a redemption or a purge must
//! delete and parses the command-line verbs. It never reads the clock, the random source or
//! storage; the caller passes the current time, random bytes and the records it has read.
//!
//! `lua_api` is the only file that uses mlua. It converts Lua tables to these types and back
//! and maps [`Error`] to Prosody's error strings. The Lua shims in `lua/` do all I/O (storage,
//! stanzas, events) and ask this crate what to do.

#![deny(unsafe_code)]

pub mod adhoc;
pub mod cli;
pub mod datetime;
pub mod error;
pub mod invite;
pub mod lifecycle;
pub mod ns;
pub mod period;
pub mod register;
pub mod rooms;
pub mod token;
pub mod uri;

mod lua_api;
#[cfg(test)]
mod proptests;

pub use error::{Error, Result};
