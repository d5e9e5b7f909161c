//! One module per `authtrail` subcommand.

pub mod parse;
