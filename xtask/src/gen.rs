//! `cargo xtask gen-auth-log`: loggen on the command line.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Number of lines to write (exact).
    #[arg(long, default_value_t = 100_000)]
    lines: u64,
    /// PRNG seed: the same seed and options give the same bytes on every platform.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Timestamp layout: `rfc3164` (`Nov 28 06:49:30`) or `rfc3339`
    /// (`2026-11-28T06:55:33.434531+00:00`).
    #[arg(long, default_value = "rfc3164")]
    format: loggen::Format,
    /// Time of the first line, in seconds since the Unix epoch (UTC); the default is
    /// 2026-11-28T00:00:00Z.
    #[arg(long, default_value_t = loggen::DEFAULT_START, allow_negative_numbers = true)]
    start: i64,
    /// Host names, comma-separated; traffic is spread over them.
    #[arg(long, value_delimiter = ',', default_value = "web1")]
    hosts: Vec<String>,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let opts = loggen::Options {
        lines: args.lines,
        seed: args.seed,
        format: args.format,
        start: args.start,
        hosts: args.hosts.clone(),
    };
    let started = Instant::now();
    let (stats, dest) = match &args.out {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let stats = loggen::generate(&mut BufWriter::new(file), &opts)
                .with_context(|| format!("cannot write {}", path.display()))?;
            (stats, path.display().to_string())
        }
        None => {
            let mut stdout = io::stdout().lock();
            match loggen::generate(&mut stdout, &opts) {
                Ok(stats) => (stats, "stdout".to_owned()),
                // `cargo xtask gen-auth-log | head` is fine.
                Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(err) => return Err(err).context("cannot write to stdout"),
            }
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let mut stderr = io::stderr().lock();
    writeln!(
        stderr,
        "gen-auth-log: {} lines ({:.1} MiB, {} brute-force burst{}) to {dest} in {secs:.2} s ({:.2} M lines/s)",
        stats.lines,
        stats.bytes as f64 / (1024.0 * 1024.0),
        stats.bursts,
        if stats.bursts == 1 { "" } else { "s" },
        stats.lines as f64 / secs.max(1e-9) / 1e6,
    )?;
    Ok(())
}
