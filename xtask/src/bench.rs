//! `cargo xtask bench`: the benchmarks, with ratios against a baseline measured in the same run
//! (these machines are noisy; quote the ratios and medians).
//!
//! 1. agent-core's criterion benchmark (`parse`): parser throughput over a generated
//!    1,000,000-line auth log, against a plain memchr line count over the same bytes.
//! 2. `authtrail run` over a 1,000,000-line backlog to the file sink: wall time, CPU time and peak
//!    RSS of the agent, against `cat FILE > /dev/null` in the same run; then the agent's CPU while
//!    the log does not change.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Lines in the generated log.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Runs of the agent backlog benchmark (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds to watch the agent idle on an unchanging log.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Skip the criterion parser benchmark.
    #[arg(long)]
    no_parser: bool,
    /// Skip the agent backlog benchmark.
    #[arg(long)]
    no_agent: bool,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    if !args.no_parser {
        parser(args)?;
    }
    if !args.no_agent {
        agent(args)?;
    }
    Ok(())
}

fn parser(args: &Args) -> Result<()> {
    crate::run(
        crate::cargo()
            .args(["bench", "-p", "agent-core", "--bench", "parse"])
            .env("AUTHTRAIL_BENCH_LINES", args.lines.to_string()),
    )?;
    let root = crate::target_dir().join("criterion");
    println!(
        "\n== parser throughput ({} lines, criterion medians)",
        args.lines
    );
    for format in ["rfc3164", "rfc3339"] {
        let group = root.join(format!("auth_log_{format}"));
        let base = median_ns(&group.join("memchr_line_count"))?;
        let parse = median_ns(&group.join("parse_line"))?;
        let lines_per_s = args.lines as f64 / (parse / 1e9);
        println!(
            "{format}: parse_line {:.2} M lines/s ({:.1} ms per {} lines); memchr line count {:.2} ms; parse / line-count time ratio {:.1}x",
            lines_per_s / 1e6,
            parse / 1e6,
            args.lines,
            base / 1e6,
            parse / base
        );
    }
    println!("(MB/s and GiB/s per benchmark are in criterion's output above)");
    Ok(())
}

/// Criterion's median estimate, nanoseconds per iteration.
fn median_ns(bench_dir: &Path) -> Result<f64> {
    let path = bench_dir.join("new").join("estimates.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    json["median"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("no median in {}", path.display()))
}

struct Sample {
    wall: f64,
    cpu: f64,
    peak_rss_kib: u64,
}

fn agent(args: &Args) -> Result<()> {
    crate::run(crate::cargo().args(["build", "--release", "-p", "agent"]))?;
    let bin = crate::target_dir().join("release").join("authtrail");
    let dir = std::env::temp_dir().join(format!("authtrail-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("auth.log");
    crate::run(
        crate::cargo()
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "xtask",
                "--",
                "gen-auth-log",
            ])
            .args(["--lines", &args.lines.to_string(), "--seed", "1"])
            .args(["--format", "rfc3339", "--out"])
            .arg(&log),
    )?;
    let log_bytes = std::fs::metadata(&log)?.len();
    let mut agent_samples = Vec::new();
    let mut cat_samples = Vec::new();
    let mut idle = None;
    for i in 0..args.runs {
        cat_samples.push(cat(&log)?);
        let last = i + 1 == args.runs;
        let (s, idle_cpu) = agent_once(&bin, &dir, &log, if last { args.idle_secs } else { 0 })?;
        agent_samples.push(s);
        if last {
            idle = idle_cpu;
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut aw: Vec<f64> = agent_samples.iter().map(|s| s.wall).collect();
    let mut ac: Vec<f64> = agent_samples.iter().map(|s| s.cpu).collect();
    let mut ar: Vec<f64> = agent_samples
        .iter()
        .map(|s| s.peak_rss_kib as f64)
        .collect();
    let mut cw: Vec<f64> = cat_samples.iter().map(|s| s.wall).collect();
    let mut ratios: Vec<f64> = agent_samples
        .iter()
        .zip(&cat_samples)
        .map(|(a, c)| a.wall / c.wall.max(1e-6))
        .collect();
    let (aw, ac, ar, cw, ratio) = (
        med(&mut aw),
        med(&mut ac),
        med(&mut ar),
        med(&mut cw),
        med(&mut ratios),
    );
    println!(
        "\n== authtrail run, {} lines ({:.1} MiB) backlog to the file sink, median of {} runs",
        args.lines,
        log_bytes as f64 / 1048576.0,
        args.runs
    );
    println!(
        "agent: wall {aw:.2} s ({:.0} lines/s), CPU {ac:.2} s, peak RSS {:.1} MiB",
        args.lines as f64 / aw,
        ar / 1024.0
    );
    println!(
        "cat FILE > /dev/null: wall {cw:.3} s; agent/cat wall ratio {ratio:.0}x (pairwise median)"
    );
    if let Some(pct) = idle {
        println!(
            "idle: agent CPU over {} s with an unchanging log: {pct:.3}%",
            args.idle_secs
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

fn cat(log: &Path) -> Result<Sample> {
    let start = Instant::now();
    let status = Command::new("cat")
        .arg(log)
        .stdout(Stdio::null())
        .status()
        .context("running cat")?;
    if !status.success() {
        bail!("cat failed");
    }
    Ok(Sample {
        wall: start.elapsed().as_secs_f64(),
        cpu: 0.0,
        peak_rss_kib: 0,
    })
}

/// One agent run over the backlog; returns its figures and, if `idle_secs` > 0, its CPU share
/// (percent of one core) while idle afterwards.
fn agent_once(bin: &Path, dir: &Path, log: &Path, idle_secs: u64) -> Result<(Sample, Option<f64>)> {
    let state = dir.join("state");
    let events = dir.join("events.ndjson");
    std::fs::remove_dir_all(&state).ok();
    std::fs::remove_file(&events).ok();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state-dir = {state:?}\ntimezone = \"UTC\"\n[[source]]\ntype = \"file\"\nname = \"bench\"\npaths = [{log:?}]\nread-from = \"beginning\"\n[sink]\ntype = \"file\"\npath = {events:?}\n",
            state = state.display().to_string(),
            log = log.display().to_string(),
            events = events.display().to_string(),
        ),
    )?;
    set_mode(&config, 0o600)?;
    let log_len = std::fs::metadata(log)?.len();
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting authtrail run")?;
    let pid = child.id();
    // Done when the status file says the whole log was read and committed.
    let deadline = Instant::now() + Duration::from_secs(600);
    let wall = loop {
        if let Some(code) = child.try_wait()? {
            bail!("authtrail run exited early ({code})");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("authtrail run did not finish the backlog in 600 s");
        }
        if caught_up(&state, log_len) {
            break start.elapsed().as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let cpu = cpu_secs(pid)?;
    let peak = peak_rss_kib(pid)?;
    let idle = if idle_secs > 0 {
        let before = cpu_secs(pid)?;
        std::thread::sleep(Duration::from_secs(idle_secs));
        let after = cpu_secs(pid)?;
        Some((after - before) / idle_secs as f64 * 100.0)
    } else {
        None
    };
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let status = child.wait()?;
    if !status.success() {
        bail!("authtrail run did not stop cleanly on SIGTERM ({status})");
    }
    Ok((
        Sample {
            wall,
            cpu,
            peak_rss_kib: peak,
        },
        idle,
    ))
}

fn caught_up(state: &Path, log_len: u64) -> bool {
    let Ok(text) = std::fs::read_to_string(state.join("status.json")) else {
        return false;
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let offset = json["sources"][0]["streams"][0]["offset"].as_u64();
    let committed = json["events-committed"].as_u64().unwrap_or(0);
    offset == Some(log_len)
        && committed > 0
        && json["sources"][0]["counters"]["events"].as_u64() == Some(committed)
}

fn set_mode(path: &PathBuf, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// utime + stime of a live process, seconds.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`, which may contain spaces.
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let stime: f64 = fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let ticks = crate::capture(Command::new("getconf").arg("CLK_TCK"))
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Ok((utime + stime) / ticks)
}

/// VmHWM of a live process, KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/PID/status")
}
