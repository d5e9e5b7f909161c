//! authtrail, the agent: the parts of the `authtrail` binary that are not argument parsing.
//! agent-core does the parsing; this crate owns files, clocks, signals and the network.

pub mod cmd;
pub mod lines;
pub mod timezone;
