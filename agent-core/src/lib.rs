//! authtrail's core: the login-event model, zero-copy parsers for auth-log lines, the ECS JSON
//! encoding of an event and the compact batch body, and fixed-capacity buffers.
//!
//! Nothing here does I/O, reads a clock or allocates on the parse path: time comes in as an
//! argument ([`syslog::Context`]), input comes in as bytes, and every field of a parsed
//! [`LoginEvent`] borrows from the line it came from. The binary crates own files, sockets,
//! signals and privileges.
//!
//! The entry point is [`parse_line`]: one raw log line (a syslog line in any of the formats
//! [`syslog::parse_header`] knows) in, a [`Parsed`] verdict out. [`parse_message`] does the same
//! for a bare message whose header fields come from elsewhere (journald, tests).
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
pub mod batch;
pub mod detect;
pub mod ecs;
mod event;
#[cfg(feature = "alloc")]
pub mod exit;
pub mod hash;
mod parse;
pub mod ring;
pub mod syslog;
mod text;
pub mod time;
pub mod utmp;
pub mod wire;

pub use event::{Action, Category, LoginEvent, Method, Outcome, Source};
pub use parse::{Parsed, parse_headerless_sshd, parse_line, parse_message};
pub use text::Text;
pub use time::Timestamp;
