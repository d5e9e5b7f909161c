//! `cargo xtask demo`: a generated auth log through `authtrail parse`, end to end.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Lines of auth log to generate.
    #[arg(long, default_value_t = 200_000)]
    lines: u64,
    /// loggen seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("authtrail-demo-{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log = dir.join("auth.log");
    let events = dir.join("events.ndjson");

    println!("==> generating {} lines of RFC 3339 auth log", args.lines);
    let started = Instant::now();
    let opts = loggen::Options {
        lines: args.lines,
        seed: args.seed,
        format: loggen::Format::Rfc3339,
        ..loggen::Options::default()
    };
    let file = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let stats = loggen::generate(&mut BufWriter::new(file), &opts)
        .with_context(|| format!("cannot write {}", log.display()))?;
    println!(
        "    {} lines, {} bytes, {} brute-force burst(s) in {:.2} s",
        stats.lines,
        stats.bytes,
        stats.bursts,
        started.elapsed().as_secs_f64()
    );

    println!("==> building the agent");
    crate::run(crate::cargo().args(["build", "--release", "-p", "agent"]))?;
    let bin = crate::target_dir().join("release").join("authtrail");

    println!("==> authtrail parse");
    let out =
        File::create(&events).with_context(|| format!("cannot create {}", events.display()))?;
    let mut parse = Command::new(&bin);
    parse
        .arg("parse")
        .arg(&log)
        .stdout(out)
        .stderr(Stdio::piped());
    println!("$ {} > {}", crate::display(&parse), events.display());
    let started = Instant::now();
    let output = parse
        .output()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let took = started.elapsed();
    let summary = String::from_utf8_lossy(&output.stderr);
    if !summary.trim().is_empty() {
        println!("--- summary (stderr) ---");
        println!("{}", summary.trim_end());
    }
    if !output.status.success() {
        bail!("`authtrail parse` failed ({})", output.status);
    }
    println!("    parsed in {:.2} s", took.as_secs_f64());

    println!("==> first 3 events");
    print_head(&events, 3)?;

    println!("==> files");
    println!("    auth log: {}", log.display());
    println!("    events:   {}", events.display());
    println!("    (remove with: rm -r {})", dir.display());
    Ok(())
}

fn print_head(path: &Path, n: usize) -> Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut shown = 0;
    for line in BufReader::new(file).lines().take(n) {
        println!(
            "{}",
            line.with_context(|| format!("cannot read {}", path.display()))?
        );
        shown += 1;
    }
    if shown == 0 {
        println!("    (no events)");
    }
    Ok(())
}
