//! One module per `authtrail` subcommand.

pub mod install;
pub mod parse;
pub mod sources;
pub mod status;
pub mod validate;
