//! authtrail, the agent: the parts of the `authtrail` binary that are not argument parsing.
//! agent-core does the parsing; this crate owns files, clocks, signals and the network.

mod bytesize;
pub mod cmd;
pub mod config;
mod detect;
mod durable;
pub mod host;
mod lines;
pub mod memory;
mod pipeline;
mod progress;
pub mod run;
mod sd_notify;
pub mod ship;
pub mod sink;
pub mod source;
pub mod timezone;
