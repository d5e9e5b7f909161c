//! `authtrail`: the login-telemetry agent.

use std::path::PathBuf;
use std::process::ExitCode;

use agent::cmd;
use agent::timezone::Zone;
use clap::{Parser, Subcommand};

/// Watches every login on this machine and ships the evidence to a collector.
#[derive(Debug, Parser)]
#[command(name = "authtrail", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse auth-log lines and print their events as ECS JSON, one per line, with a summary on
    /// stderr. Reads standard input when no file is given.
    Parse {
        /// Log files to read (`-` for standard input).
        files: Vec<PathBuf>,
        /// Print the lines from auth programs that no parser recognised (on stderr).
        #[arg(long)]
        unmatched: bool,
        /// Leave the original line (`message`) out of each event.
        #[arg(long)]
        no_message: bool,
        /// Zone of timestamps that carry none (`Nov 28 06:49:30`): `local`, `UTC` or `+HH:MM`.
        #[arg(long, default_value = "local")]
        timezone: Zone,
        /// Reference time for year-less timestamps (RFC 3339); defaults to each file's mtime.
        #[arg(long, value_parser = parse_rfc3339)]
        reference_time: Option<agent_core::Timestamp>,
        /// Longest line kept, in bytes; longer lines are cut and counted.
        #[arg(long, default_value_t = cmd::parse::DEFAULT_MAX_LINE)]
        max_line: usize,
    },
}

fn parse_rfc3339(s: &str) -> Result<agent_core::Timestamp, String> {
    let ts: jiff::Timestamp = s
        .parse()
        .map_err(|e| format!("expected an RFC 3339 time like 2026-11-28T06:49:30Z: {e}"))?;
    Ok(agent_core::Timestamp {
        secs: ts.as_second(),
        nanos: ts.subsec_nanosecond().unsigned_abs(),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse {
            files,
            unmatched,
            no_message,
            timezone,
            reference_time,
            max_line,
        } => {
            let opts = cmd::parse::Options {
                files,
                unmatched,
                no_message,
                zone: timezone,
                reference: reference_time,
                max_line,
            };
            cmd::parse::run(
                &opts,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            )
            .map(|_| ())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`authtrail parse log | head`) is not an error worth a message.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("authtrail: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
