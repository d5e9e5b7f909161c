//! authtrail, the agent: the parts of the `authtrail` binary that are not argument parsing.
//! agent-core does the parsing; this crate owns files, clocks, signals and the network.

pub mod bytesize;
pub mod cmd;
pub mod config;
pub mod detect;
mod durable;
pub mod host;
pub mod lines;
pub mod memory;
pub mod pipeline;
pub mod progress;
pub mod run;
pub mod sd_notify;
pub mod ship;
pub mod sink;
pub mod source;
pub mod timezone;
