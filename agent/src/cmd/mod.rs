//! One module per `authtrail` subcommand.

pub mod parse;
pub mod sources;
pub mod validate;
