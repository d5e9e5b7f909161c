//! `cargo xtask bench`: the benchmarks, with ratios against a baseline measured in the same run
//! (these machines are noisy; quote the ratios and medians).
//!
//! 1. agent-core's criterion benchmark (`parse`): parser throughput over a generated
//!    1,000,000-line auth log, against a plain memchr line count over the same bytes; then ECS
//!    rendering against copying the lines (`ecs`), and the collector's decode against plain
//!    zstd decompression and its store (`collector --bench ingest`).
//! 2. `authtrail run` over a 1,000,000-line backlog to the file sink: wall time, CPU time and peak
//!    RSS of the agent, against `cat FILE > /dev/null` in the same run, and its CPU against the
//!    same run with the edge detections off; then the agent's CPU while the log does not change.
//! 3. The same backlog from the agent to the collector over TLS on loopback (`--runs` times, a
//!    fresh store and agent state each time; medians): wall time, CPU and peak RSS of both, and
//!    the compressed bytes sent against the raw log's size.
//!
//! `--scenario idle|trickle|fan-in|nats|buffer` runs only those live-efficiency scenarios instead (see
//! [`crate::live`]), each beside the single-agent backlog measured in the same run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Lines in the generated log.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Runs of the agent backlog and shipping benchmarks, and rounds of the `fan-in` scenario
    /// (the median is reported).
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
    /// Skip the agent-to-collector benchmark.
    #[arg(long)]
    no_shipping: bool,
    /// Run only these live-efficiency scenarios (repeat the flag), each beside the
    /// single-agent backlog to the collector (`--lines` lines): nothing else runs.
    #[arg(long, value_enum)]
    scenario: Vec<crate::live::Scenario>,
    /// The scenarios and the shipping benchmark measure the binaries in this folder
    /// (`authtrail`, `authtrail-collector`) instead of a fresh release build (to compare two
    /// builds in the same session).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Seconds of the `trickle` scenario.
    #[arg(long, default_value_t = 30)]
    trickle_secs: u64,
    /// Lines per second in the `trickle` scenario.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Lines per append in the `trickle` scenario.
    #[arg(long, default_value_t = 2)]
    per_append: u64,
    /// Agents in the `fan-in` scenario.
    #[arg(long, default_value_t = 20)]
    fan_in_agents: usize,
    /// Lines per agent in the `fan-in` scenario.
    #[arg(long, default_value_t = 50_000)]
    fan_in_lines: u64,
    /// Seconds strace watches for the fsync and thread counts of `idle` and `trickle`.
    #[arg(long, default_value_t = 10)]
    strace_secs: u64,
    /// Top-level settings added to the scenarios' agent configs, e.g. `commit-interval =
    /// "300ms"` (to compare settings; a build that does not know them refuses to start).
    #[arg(long, default_value = "")]
    agent_config: String,
    /// Run the shipping benchmark through a loopback relay that forwards each direction at
    /// this many Mbit/s (10^6 bit/s, a token bucket per direction, `link.rs`) instead of
    /// straight over loopback; repeat the flag for several rates, each measured with both
    /// bodies in turn; `0` is straight over loopback (a baseline in the same session).
    /// Defaults to none: straight over loopback.
    #[arg(long)]
    link_mbit: Vec<f64>,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    if !args.scenario.is_empty() {
        return live(args);
    }
    if !args.no_parser {
        parser(args)?;
    }
    if !args.no_agent {
        agent(args)?;
    }
    if !args.no_shipping {
        shipping(args)?;
    }
    Ok(())
}

fn live(args: &Args) -> Result<()> {
    let dir = crate::release_bins(args.bin_dir.as_deref())?;
    let bins = crate::live::Bins {
        agent: dir.join("authtrail"),
        collector: dir.join("authtrail-collector"),
    };
    let settings = crate::live::Settings {
        idle_secs: args.idle_secs,
        trickle_secs: args.trickle_secs,
        rate: args.rate,
        per_append: args.per_append,
        fan_in_agents: args.fan_in_agents,
        fan_in_lines: args.fan_in_lines,
        backlog_lines: args.lines,
        runs: args.runs,
        strace_secs: args.strace_secs,
        agent_config: args.agent_config.clone(),
    };
    crate::live::run(&args.scenario, &bins, &settings)
}

fn parser(args: &Args) -> Result<()> {
    criterion("agent-core", "parse", args.lines)?;
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
        let detect = median_ns(&group.join("parse_and_detect"))?;
        println!(
            "{format}: parse + detect {:.1} ms; parse + detect / parse alone {:.2}x (target at most 1.20x)",
            detect / 1e6,
            detect / parse
        );
    }
    println!(
        "detector memory at its configured size (DefaultDetector): {} bytes",
        std::mem::size_of::<agent_core::detect::DefaultDetector>()
    );
    println!("(MB/s and GiB/s per benchmark are in criterion's output above)");
    hot_paths(args)
}

/// The agent's ECS rendering and the collector's decode and store, per event (criterion
/// medians), each against a baseline in the same run.
fn hot_paths(args: &Args) -> Result<()> {
    criterion("agent-core", "ecs", args.lines)?;
    // The store bench writes a fresh database per iteration: a tenth of the lines is plenty.
    let collector_lines = (args.lines / 10).max(10_000);
    criterion("collector", "ingest", collector_lines)?;
    let root = crate::target_dir().join("criterion");
    let ecs = root.join("ecs_events");
    let (copy, render) = (
        median_ns(&ecs.join("copy_line"))?,
        median_ns(&ecs.join("write_event"))?,
    );
    println!("\n== hot paths (criterion medians)");
    println!(
        "agent ECS rendering, {} lines: write_event {:.1} ms, copying each line {:.1} ms (ratio {:.1}x)",
        args.lines,
        render / 1e6,
        copy / 1e6,
        render / copy
    );
    let ingest = root.join("collector_ingest");
    let (unzstd, decode, store, fleet) = (
        median_ns(&ingest.join("zstd_decompress"))?,
        median_ns(&ingest.join("decode"))?,
        median_ns(&ingest.join("store"))?,
        median_ns(&ingest.join("store_fleet_thread"))?,
    );
    println!(
        "collector, {collector_lines} lines of agent NDJSON: decode {:.1} ms ({:.1}x plain zstd decompression, {:.1} ms), store {:.1} ms, store with the fleet detections on their thread {:.1} ms ({:.2}x)",
        decode / 1e6,
        decode / unzstd,
        unzstd / 1e6,
        store / 1e6,
        fleet / 1e6,
        fleet / store
    );
    Ok(())
}

/// Runs one criterion benchmark over a generated log of `lines` lines.
fn criterion(package: &str, bench: &str, lines: u64) -> Result<()> {
    crate::run(
        crate::cargo()
            .args(["bench", "-p", package, "--bench", bench])
            .env(loggen::BENCH_LINES_VAR, lines.to_string()),
    )
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
    let mut undetected = Vec::new();
    let mut cat_samples = Vec::new();
    let mut idle = None;
    for i in 0..args.runs {
        cat_samples.push(cat(&log)?);
        let last = i + 1 == args.runs;
        // The same backlog with the edge detections off, in turn: what they cost the agent.
        undetected.push(agent_once(&bin, &dir, &log, 0, false)?.0);
        let idle_secs = if last { args.idle_secs } else { 0 };
        let (s, idle_cpu) = agent_once(&bin, &dir, &log, idle_secs, true)?;
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
    let mut detect_ratios: Vec<f64> = agent_samples
        .iter()
        .zip(&undetected)
        .map(|(a, u)| a.cpu / u.cpu.max(1e-6))
        .collect();
    let mut uc: Vec<f64> = undetected.iter().map(|s| s.cpu).collect();
    let (uc, detect_ratio) = (med(&mut uc), med(&mut detect_ratios));
    println!(
        "agent with [detect] enabled = false: CPU {uc:.2} s; CPU with / without the edge detections {detect_ratio:.2}x (pairwise median)"
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
fn agent_once(
    bin: &Path,
    dir: &Path,
    log: &Path,
    idle_secs: u64,
    detect: bool,
) -> Result<(Sample, Option<f64>)> {
    let state = dir.join("state");
    let events = dir.join("events.ndjson");
    std::fs::remove_dir_all(&state).ok();
    std::fs::remove_file(&events).ok();
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state-dir = {state:?}\ntimezone = \"UTC\"\n[[source]]\ntype = \"file\"\nname = \"bench\"\npaths = [{log:?}]\nread-from = \"beginning\"\n[sink]\ntype = \"file\"\npath = {events:?}\n[detect]\nenabled = {detect}\n",
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
    // Alerts are committed too, so the committed count is at least the source's events.
    let events = json["sources"][0]["counters"]["events"]
        .as_u64()
        .unwrap_or(u64::MAX);
    offset == Some(log_len) && committed > 0 && committed >= events
}

fn set_mode(path: &PathBuf, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// utime + stime of a live process, seconds.
pub(crate) fn cpu_secs(pid: u32) -> Result<f64> {
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
pub(crate) fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/PID/status")
}

/// Generates the benchmark log in `dir` (RFC 3339, seed 1).
fn bench_log(dir: &Path, lines: u64) -> Result<PathBuf> {
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
            .args(["--lines", &lines.to_string(), "--seed", "1"])
            .args(["--format", "rfc3339", "--out"])
            .arg(&log),
    )?;
    Ok(log)
}

/// zstd level of the raw-log baseline: the agent's default (`ship::batch::ZSTD_LEVEL`).
const RAW_ZSTD_LEVEL: i32 = 1;

/// Prints the medians of one body's shipping runs; returns (body, events/s, agent peak RSS,
/// wire bytes, agent CPU microseconds per event).
fn report_shipping<'a>(
    args: &Args,
    link: Option<f64>,
    body: &'a str,
    samples: &[ShipSample],
    log_len: u64,
    raw_zstd: usize,
) -> (&'a str, f64, f64, f64, f64) {
    let median = |f: &dyn Fn(&ShipSample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let events = median(&|s| s.events as f64);
    let wall = median(&|s| s.wall);
    let over = link.map_or_else(
        || "loopback".to_owned(),
        |mbit| format!("a {mbit} Mbit/s link"),
    );
    println!(
        "\n== agent -> collector over TLS (mTLS, zstd, body {body}) on {over}, {} lines ({:.1} MiB), median of {} runs",
        args.lines,
        log_len as f64 / 1048576.0,
        samples.len()
    );
    println!(
        "{events:.0} events stored in {wall:.2} s: {:.0} events/s end to end",
        median(&|s| s.events as f64 / s.wall)
    );
    println!(
        "agent:     CPU {:.2} s ({:.2} us/event), peak RSS {:.1} MiB",
        median(&|s| s.agent_cpu),
        median(&|s| s.agent_cpu * 1e6 / s.events as f64),
        median(&|s| s.agent_rss_kib as f64) / 1024.0
    );
    println!(
        "collector: CPU {:.2} s, peak RSS {:.1} MiB",
        median(&|s| s.collector_cpu),
        median(&|s| s.collector_rss_kib as f64) / 1024.0
    );
    let sent = median(&|s| s.sent_bytes as f64);
    println!(
        "wire: {sent:.0} compressed body bytes = {:.2}% of the raw log ({log_len} bytes); loopback carried {:.0} bytes both ways (TLS, headers, answers{})",
        sent * 100.0 / log_len as f64,
        median(&|s| s.loopback as f64),
        if link.is_some() {
            "; twice, through the relay"
        } else {
            ""
        }
    );
    println!(
        "wire vs raw lines: zstd -{RAW_ZSTD_LEVEL} of the raw log alone {raw_zstd} bytes \
         ({:.2}% of it); wire / zstd(raw lines) = {:.2}x",
        raw_zstd as f64 * 100.0 / log_len as f64,
        sent / raw_zstd as f64
    );
    println!(
        "store: {:.0} bytes = {:.1} bytes per stored event",
        median(&|s| s.store_bytes as f64),
        median(&|s| s.store_bytes as f64 / s.events as f64)
    );
    for (i, search) in SEARCHES.iter().enumerate() {
        println!(
            "search: authtrail-collector {} on the stored events: {:.2} s",
            search.join(" "),
            median(&|s| s.searches[i])
        );
    }
    (
        body,
        median(&|s| s.events as f64 / s.wall),
        median(&|s| s.agent_rss_kib as f64),
        sent,
        median(&|s| s.agent_cpu * 1e6 / s.events as f64),
    )
}

/// `[sink] body` of the shipping runs: the baseline first.
const SINK_BODIES: [&str; 2] = ["ecs-ndjson", "compact"];

/// One agent-to-collector run.
struct ShipSample {
    wall: f64,
    events: u64,
    sent_bytes: u64,
    loopback: u64,
    agent_cpu: f64,
    agent_rss_kib: u64,
    collector_cpu: f64,
    collector_rss_kib: u64,
    /// Wall seconds of the searches in [`SEARCHES`] on the run's store.
    searches: Vec<f64>,
    /// Bytes of the collector's data directory at the end.
    store_bytes: u64,
}

/// Searches timed on the store each shipping run leaves (a value in every batch, one in a few,
/// and the per-host/action summary).
const SEARCHES: [&[&str]; 3] = [
    &["query", "--user", "root", "--limit", "20"],
    &["query", "--source-ip", "203.0.113.144", "--limit", "20"],
    &["stats"],
];

fn shipping(args: &Args) -> Result<()> {
    let release = crate::release_bins(args.bin_dir.as_deref())?;
    let bins = (
        release.join("authtrail"),
        release.join("authtrail-collector"),
    );
    let dir = std::env::temp_dir().join(format!("authtrail-bench-ship-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let log = bench_log(&dir, args.lines)?;
    let log_len = std::fs::metadata(&log)?.len();
    let pki = dir.join("pki");
    crate::run(
        Command::new(&bins.1)
            .args(["certs", "init", "--dir"])
            .arg(&pki),
    )?;
    let out = Command::new(&bins.1)
        .args(["certs", "issue-agent", "--dir"])
        .arg(&pki)
        .output()?;
    let agent_id = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("agent id: ").map(|s| s.trim().to_owned()))
        .context("certs issue-agent printed no agent id")?;
    // The target: the shipped bytes against the raw lines alone at the agent's zstd level.
    let raw_zstd = zstd::bulk::compress(&std::fs::read(&log)?, RAW_ZSTD_LEVEL)?.len();
    if let Some(bad) = args
        .link_mbit
        .iter()
        .find(|m| !(m.is_finite() && **m >= 0.0))
    {
        bail!("--link-mbit {bad}: a rate is 0 (plain loopback) or a positive number of Mbit/s");
    }
    let links: Vec<Option<f64>> = if args.link_mbit.is_empty() {
        vec![None]
    } else {
        let free = |m: f64| (m > 0.0).then_some(m);
        args.link_mbit.iter().copied().map(free).collect()
    };
    let mut summary = Vec::new();
    for link in links {
        let over = link.map_or_else(|| "loopback".to_owned(), |m| format!("{m} Mbit/s"));
        // Both bodies, run by run in turn, so the compact body's figures have a baseline from
        // the same run: NDJSON first.
        let mut by_body: Vec<(&str, Vec<ShipSample>)> =
            SINK_BODIES.iter().map(|b| (*b, Vec::new())).collect();
        for run in 0..args.runs.max(1) {
            for (body, samples) in &mut by_body {
                let run_dir = dir.join(format!("run-{run}-{body}"));
                let s = ship_once(
                    &bins,
                    &run_dir,
                    &pki,
                    &agent_id,
                    (&log, log_len),
                    body,
                    link,
                )?;
                println!(
                    "run {} ({body}, {over}): {} events in {:.2} s ({:.0}/s); agent CPU {:.2} s, {:.1} MiB; collector CPU {:.2} s, {:.1} MiB",
                    run + 1,
                    s.events,
                    s.wall,
                    s.events as f64 / s.wall,
                    s.agent_cpu,
                    s.agent_rss_kib as f64 / 1024.0,
                    s.collector_cpu,
                    s.collector_rss_kib as f64 / 1024.0
                );
                samples.push(s);
                std::fs::remove_dir_all(&run_dir).ok();
            }
        }
        let mut medians = Vec::new();
        for (body, samples) in &by_body {
            medians.push(report_shipping(
                args, link, body, samples, log_len, raw_zstd,
            ));
        }
        if let [
            (_, base_rate, base_rss, base_sent, base_cpu),
            (_, rate, rss, sent, cpu),
        ] = medians[..]
        {
            let line = format!(
                "{over}: {} against {} (same run): events/s {:.2}x ({rate:.0} vs {base_rate:.0}), agent CPU/event {:.2}x ({cpu:.2} vs {base_cpu:.2} us), agent peak RSS {:.2}x, wire bytes {:.2}x",
                SINK_BODIES[1],
                SINK_BODIES[0],
                rate / base_rate,
                cpu / base_cpu,
                rss / base_rss,
                sent / base_sent
            );
            println!("\n== {line}");
            summary.push(line);
        }
    }
    if summary.len() > 1 {
        println!("\n== summary");
        for line in summary {
            println!("{line}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// One run: a fresh collector store and agent state, the whole backlog shipped.
fn ship_once(
    (agent_bin, collector_bin): &(PathBuf, PathBuf),
    dir: &Path,
    pki: &Path,
    agent_id: &str,
    (log, log_len): (&Path, u64),
    body: &str,
    link: Option<f64>,
) -> Result<ShipSample> {
    use std::io::BufRead as _;
    let state = dir.join("state");
    std::fs::create_dir_all(&state)?;
    std::fs::write(state.join("agent-id"), format!("{agent_id}\n"))?;
    let ccfg = dir.join("collector.toml");
    std::fs::write(
        &ccfg,
        format!(
            "listen = \"127.0.0.1:0\"\ndata-dir = {:?}\n[tls]\ncert-file = {:?}\nkey-file = {:?}\nclient-ca-file = {:?}\n[auth]\nrequire = \"mtls\"\n",
            dir.join("collector-data").display().to_string(),
            pki.join("server.pem").display().to_string(),
            pki.join("server-key.pem").display().to_string(),
            pki.join("ca.pem").display().to_string(),
        ),
    )?;
    set_mode(&ccfg, 0o600)?;
    let mut collector = Command::new(collector_bin)
        .args(["serve", "--config"])
        .arg(&ccfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut first = String::new();
    std::io::BufReader::new(collector.stdout.take().context("stdout")?).read_line(&mut first)?;
    let Some(addr) = first
        .trim()
        .strip_prefix("listening on ")
        .map(str::to_owned)
    else {
        let _ = collector.kill();
        bail!("collector did not start");
    };
    // On a limited link the agent talks to the relay; the relay stops accepting when the
    // run ends (its open connection ends with the collector).
    let relay = match link {
        Some(mbit) => {
            let upstream = addr.parse().context("collector listen address")?;
            Some(crate::link::Link::start("127.0.0.1:0", upstream, mbit)?)
        }
        None => None,
    };
    let addr = relay.as_ref().map_or(addr, |r| r.addr().to_string());
    let acfg = dir.join("agent.toml");
    std::fs::write(
        &acfg,
        format!(
            "state-dir = {:?}\ntimezone = \"UTC\"\n[[source]]\ntype = \"file\"\nname = \"bench\"\npaths = [{:?}]\nread-from = \"beginning\"\n[sink]\ntype = \"collector\"\nbody = \"{body}\"\nurl = \"https://{addr}\"\n[sink.tls]\nca-file = {:?}\nserver-name = \"localhost\"\ncert-file = {:?}\nkey-file = {:?}\n",
            state.display().to_string(),
            log.display().to_string(),
            pki.join("ca.pem").display().to_string(),
            pki.join(format!("agent-{agent_id}.pem"))
                .display()
                .to_string(),
            pki.join(format!("agent-{agent_id}-key.pem"))
                .display()
                .to_string(),
        ),
    )?;
    set_mode(&acfg, 0o600)?;
    let lo_before = loopback_bytes();
    let start = Instant::now();
    let mut agent = Command::new(agent_bin)
        .args(["run", "--config"])
        .arg(&acfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let (mut wall, mut done) = loop {
        if let Some(code) = agent.try_wait()? {
            let _ = collector.kill();
            bail!("authtrail run exited early ({code})");
        }
        if Instant::now() > deadline {
            let _ = agent.kill();
            let _ = collector.kill();
            bail!("the backlog did not reach the collector in 900 s");
        }
        if let Some(done) = shipped(&state, log_len) {
            break (start.elapsed().as_secs_f64(), done);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The read offset in the status is the source's: an event still on its way through the
    // pipeline then (the rest of the last chunk, an alert) changes the next status the agent
    // writes, at most its 1 s status interval later (an unchanged status is not rewritten).
    // Watch that long; if a later status counts more, the run ended there.
    let confirm = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < confirm {
        if let Some(next) = shipped(&state, log_len).filter(|n| n.updated != done.updated) {
            if next.events != done.events {
                println!(
                    "  (the status said {} events, then {}: the run ends at the second)",
                    done.events, next.events
                );
                wall = start.elapsed().as_secs_f64();
                done = next;
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Shipped {
        sent_bytes,
        events: sent,
        ..
    } = done;
    let loopback = loopback_bytes().saturating_sub(lo_before);
    let (agent_cpu, agent_rss_kib) = (cpu_secs(agent.id())?, peak_rss_kib(agent.id())?);
    let (collector_cpu, collector_rss_kib) =
        (cpu_secs(collector.id())?, peak_rss_kib(collector.id())?);
    for child in [&mut agent, &mut collector] {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        child.wait()?;
    }
    let mut searches = Vec::new();
    for search in SEARCHES {
        let t = Instant::now();
        let out = Command::new(collector_bin)
            .args(search)
            .arg("--config")
            .arg(&ccfg)
            .stdout(Stdio::null())
            .status()?;
        if !out.success() {
            bail!("authtrail-collector {} failed ({out})", search.join(" "));
        }
        searches.push(t.elapsed().as_secs_f64());
    }
    // What counts is what the store holds, not what the agent says it sent.
    let out = Command::new(collector_bin)
        .args(["stats", "--since", "100000d", "--config"])
        .arg(&ccfg)
        .output()?;
    if !out.status.success() {
        bail!("authtrail-collector stats failed ({})", out.status);
    }
    let events = stored_events(&String::from_utf8_lossy(&out.stdout))
        .context("authtrail-collector stats printed no event table")?;
    if events != sent {
        println!("  (the agent sent {sent} events, the store holds {events})");
    }
    // The store's files after a clean stop (database and what is left of its WAL).
    let mut store_bytes = 0;
    for entry in std::fs::read_dir(dir.join("collector-data"))? {
        store_bytes += entry?.metadata()?.len();
    }
    Ok(ShipSample {
        wall,
        events,
        store_bytes,
        sent_bytes,
        loopback,
        agent_cpu,
        agent_rss_kib,
        collector_cpu,
        collector_rss_kib,
        searches,
    })
}

/// A status showing the whole log read, committed and accepted by the collector.
struct Shipped {
    /// Compressed body bytes sent.
    sent_bytes: u64,
    /// Events sent.
    events: u64,
    /// When the agent wrote the status.
    updated: String,
}

/// When the whole log is read, committed and accepted by the collector.
fn shipped(state: &Path, log_len: u64) -> Option<Shipped> {
    let text = std::fs::read_to_string(state.join("status.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let offset = json["sources"][0]["streams"][0]["offset"].as_u64()?;
    let committed = json["events-committed"].as_u64()?;
    let ship = &json["shipping"];
    let sent = ship["sent-events"].as_u64()?;
    let backlog = ship["backlog-batches"].as_u64()?;
    (offset == log_len && committed > 0 && backlog == 0 && sent >= committed).then(|| Shipped {
        sent_bytes: ship["sent-body-bytes"].as_u64().unwrap_or(0),
        events: sent,
        updated: json["updated"].as_str().unwrap_or_default().to_owned(),
    })
}

/// The events in the store: the sum of the EVENTS column of the table `stats` prints first
/// (events per host and action, every event in exactly one row).
pub(crate) fn stored_events(stats: &str) -> Option<u64> {
    // The counts table: `AGENT  HOST  ACTION  EVENTS` (the agents table ends in `STATUS`).
    let mut lines = stats
        .lines()
        .skip_while(|l| !(l.starts_with("AGENT ") && l.trim_end().ends_with("EVENTS")));
    lines.next()?;
    lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

/// Bytes received on the loopback interface so far.
fn loopback_bytes() -> u64 {
    std::fs::read_to_string("/proc/net/dev")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.trim_start().starts_with("lo:"))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::stored_events;

    #[test]
    fn stored_events_sums_the_event_table_only() {
        let stats = "\
Events per agent, host and action
AGENT  HOST  ACTION        EVENTS
x      web1  auth_failure  349740
x      web1  sudo          15600
y      db-2  brute_force   7

Agents
AGENT  HOSTNAME  LAST SEEN  LAST SEQ  STATUS
x      web1      t          733       ok
";
        assert_eq!(stored_events(stats), Some(365_347));
        assert_eq!(
            stored_events(
                "Events per agent, host and action\nAGENT  HOST  ACTION  EVENTS\n\nAgents\n"
            ),
            Some(0)
        );
        assert_eq!(stored_events("nothing here\n"), None);
        assert_eq!(
            stored_events("AGENT  HOST  ACTION  EVENTS\nx  web1  sudo  many\n"),
            None
        );
    }
}
