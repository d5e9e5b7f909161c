//! The live-efficiency scenarios of `cargo xtask bench --scenario ...`, each runnable alone:
//!
//! - `idle`: the agent on a quiet log, shipping to a collector, for `--idle-secs`.
//! - `trickle`: `--rate` lines a second appended `--per-append` lines at a time (2,000 lines/s
//!   in 2-line appends: one append a millisecond) for `--trickle-secs`, each line stamped with
//!   the time it was written; then the latency of every event and alert to the store (the
//!   collector's `received_at` of its batch minus the line's time).
//! - `buffer`: 10,000 lines appended like `trickle`, once per `[sink.buffer] type` (`disk`,
//!   `memory`, `none`), `strace` attached: the bytes the agent caused to be written to disk
//!   (`write_bytes` of `/proc/PID/io`: spool, checkpoints, status file) and its fsyncs, per
//!   10,000 events.
//! - `fan-in`: `--fan-in-agents` agents with `--fan-in-lines` lines each into one collector:
//!   aggregate events/s, every event stored once, the collector's peak RSS and its 503/429
//!   answers. `--runs` rounds, each a single-agent backlog run and a fan-in run back to back
//!   (their order alternating), so that each fan-in figure has a baseline from the same
//!   moment; the medians and the median of the rounds' ratios (the figure that survives a
//!   loaded machine) are printed.
//!
//! Beside them, the same run measures the single-agent backlog (`--lines` lines to the
//! collector): its events/s (until the store holds every event, whatever the buffer type) and
//! agent CPU-seconds per million lines, the baseline the live figures are quoted against.
//!
//! For the agent: CPU % from `/proc/PID/stat` (the thread group's, ended threads included) over
//! the window; wakeups/s as voluntary context switches of every thread, ended ones included
//! (`wait4`'s rusage through `/usr/bin/time`), of the run minus those of a run that starts and
//! stops the same way without the window; fsyncs/s and threads started from a second run with
//! `strace -f -c` attached for the window (strace slows what it watches, so the other figures
//! come from the run without it).

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

/// One scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// A quiet log.
    Idle,
    /// A steady trickle of appends.
    Trickle,
    /// Many agents into one collector.
    FanIn,
    /// The backlog through a collector with `[store] type = "nats"` into a local JetStream
    /// (`nats-server -js`), then `consume` from it into SQLite.
    Nats,
    /// Disk writes per 10,000 events for each `[sink.buffer] type`.
    Buffer,
}

/// Lines of the `buffer` scenario.
const BUFFER_LINES: u64 = 10_000;

/// The scenarios' settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) idle_secs: u64,
    pub(crate) trickle_secs: u64,
    pub(crate) rate: u64,
    pub(crate) per_append: u64,
    pub(crate) fan_in_agents: usize,
    pub(crate) fan_in_lines: u64,
    pub(crate) backlog_lines: u64,
    /// Paired rounds of the `fan-in` scenario.
    pub(crate) runs: usize,
    /// Seconds strace watches in the fsync/thread run.
    pub(crate) strace_secs: u64,
    /// Top-level settings added to every measured agent's config (`commit-interval = "300ms"`).
    pub(crate) agent_config: String,
}

/// The binaries measured.
#[derive(Debug, Clone)]
pub(crate) struct Bins {
    pub(crate) agent: PathBuf,
    pub(crate) collector: PathBuf,
}

pub(crate) fn run(scenarios: &[Scenario], bins: &Bins, s: &Settings) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("authtrail-bench-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let agents = s.fan_in_agents.max(1);
    let pki = Pki::new(&bins.collector, &dir.join("pki"), agents)?;
    println!(
        "\n== live efficiency ({} / {})",
        bins.agent.display(),
        bins.collector.display()
    );
    let backlog = fan_in(
        bins,
        &pki,
        &dir.join("backlog"),
        1,
        s.backlog_lines,
        &s.agent_config,
    )?;
    println!(
        "backlog (baseline): 1 agent, {} lines: {:.0} events/s to the store, agent {:.2} CPU-s per million lines",
        s.backlog_lines,
        backlog.events_per_s,
        backlog.agent_cpu / backlog.lines as f64 * 1e6
    );
    let backlog_cpu_per_m = backlog.agent_cpu / backlog.lines as f64 * 1e6;
    for scenario in scenarios {
        match scenario {
            Scenario::Idle => idle(bins, &pki, &dir.join("idle"), s)?,
            Scenario::Trickle => trickle(bins, &pki, &dir.join("trickle"), s, backlog_cpu_per_m)?,
            Scenario::Nats => nats(bins, &pki, &dir.join("nats"), s, &backlog)?,
            Scenario::Buffer => buffer(bins, &pki, &dir.join("buffer"), s)?,
            Scenario::FanIn => fan_in_rounds(bins, &pki, &dir, s, &backlog)?,
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// `s.runs` rounds of a single-agent backlog and a fan-in run back to back (the first round's
/// backlog is the one `run` measured); each round's figures and ratio, then the medians.
fn fan_in_rounds(bins: &Bins, pki: &Pki, dir: &Path, s: &Settings, first: &FanIn) -> Result<()> {
    let (mut backlogs, mut fans, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..s.runs.max(1) {
        let fan = || {
            fan_in(
                bins,
                pki,
                &dir.join("fan-in"),
                s.fan_in_agents,
                s.fan_in_lines,
                &s.agent_config,
            )
        };
        let backlog = || {
            fan_in(
                bins,
                pki,
                &dir.join("backlog"),
                1,
                s.backlog_lines,
                &s.agent_config,
            )
        };
        // Alternating which goes first, so that a machine getting busier or quieter favours
        // neither.
        let (b, f) = match round {
            0 => (None, fan()?),
            r if r % 2 == 1 => {
                let f = fan()?;
                (Some(backlog()?), f)
            }
            _ => {
                let b = backlog()?;
                (Some(b), fan()?)
            }
        };
        let b = b.as_ref().unwrap_or(first);
        let ratio = f.events_per_s / b.events_per_s;
        println!(
            "fan-in round {}: {} agents x {} lines: {:.0} events/s aggregate = {:.0}% of the single-agent backlog's {:.0}/s ({} lines); {} events stored for {} sent ({}); 503/429 answers {} (backlog {}); collector CPU {:.2} s, peak RSS {:.1} MiB",
            round + 1,
            s.fan_in_agents,
            s.fan_in_lines,
            f.events_per_s,
            ratio * 100.0,
            b.events_per_s,
            s.backlog_lines,
            f.stored,
            f.sent,
            if f.stored == f.sent {
                "each once"
            } else {
                "MISMATCH"
            },
            f.busy,
            b.busy,
            f.collector_cpu,
            f.collector_rss_kib as f64 / 1024.0
        );
        backlogs.push(b.events_per_s);
        fans.push(f.events_per_s);
        ratios.push(ratio);
    }
    println!(
        "fan-in, median of {} rounds: {:.0} events/s aggregate against the single-agent backlog's {:.0}/s; median ratio {:.0}% (target at least 80%)",
        ratios.len(),
        median(&fans),
        median(&backlogs),
        median(&ratios) * 100.0
    );
    Ok(())
}

/// A fleet CA, the collector's certificate and `n` agents' certificates.
struct Pki {
    dir: PathBuf,
    agent_ids: Vec<String>,
}

impl Pki {
    fn new(collector: &Path, dir: &Path, n: usize) -> Result<Pki> {
        crate::run(
            Command::new(collector)
                .args(["certs", "init", "--dir"])
                .arg(dir),
        )?;
        let mut agent_ids = Vec::new();
        for _ in 0..n {
            let out = Command::new(collector)
                .args(["certs", "issue-agent", "--dir"])
                .arg(dir)
                .output()?;
            let id = String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("agent id: ").map(|s| s.trim().to_owned()))
                .context("certs issue-agent printed no agent id")?;
            agent_ids.push(id);
        }
        Ok(Pki {
            dir: dir.to_owned(),
            agent_ids,
        })
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// A running collector.
struct Collector {
    child: Child,
    addr: String,
    db: PathBuf,
    config: PathBuf,
    /// Its standard error.
    log: PathBuf,
}

impl Collector {
    fn start(bin: &Path, pki: &Pki, dir: &Path) -> Result<Collector> {
        Collector::start_with(bin, pki, dir, "")
    }

    /// [`Collector::start`] with `extra` appended to its config (a `[store]` section).
    fn start_with(bin: &Path, pki: &Pki, dir: &Path, extra: &str) -> Result<Collector> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join("collector.toml");
        let data = dir.join("collector-data");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata-dir = {:?}\n[tls]\ncert-file = {:?}\nkey-file = {:?}\nclient-ca-file = {:?}\n[auth]\nrequire = \"mtls\"\n{extra}",
                data.display().to_string(),
                pki.file("server.pem"),
                pki.file("server-key.pem"),
                pki.file("ca.pem"),
            ),
        )?;
        set_private(&config)?;
        let log = dir.join("collector.log");
        let mut child = Command::new(bin)
            // As the shipped unit sets it (targets/systemd/authtrail-collector.service).
            .env("MIMALLOC_PURGE_DELAY", "0")
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut first)?;
        let Some(addr) = first
            .trim()
            .strip_prefix("listening on ")
            .map(str::to_owned)
        else {
            let _ = child.kill();
            bail!("collector did not start");
        };
        Ok(Collector {
            child,
            addr,
            db: data.join("authtrail.db"),
            config,
            log,
        })
    }

    /// Stops it; its CPU seconds and peak RSS (KiB).
    fn stop(mut self) -> Result<(f64, u64)> {
        let figures = (cpu_secs(self.child.id())?, peak_rss_kib(self.child.id())?);
        terminate(&mut self.child)?;
        Ok(figures)
    }
}

/// Writes agent `index`'s config and state dir under `dir`; the config's path.
fn agent_config(
    pki: &Pki,
    index: usize,
    dir: &Path,
    log: &Path,
    url: &str,
    read_from: &str,
    extra: &str,
) -> Result<PathBuf> {
    let state = dir.join("state");
    std::fs::create_dir_all(&state)?;
    let id = &pki.agent_ids[index];
    std::fs::write(state.join("agent-id"), format!("{id}\n"))?;
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state-dir = {:?}\ntimezone = \"UTC\"\n{extra}\n[[source]]\ntype = \"file\"\nname = \"bench\"\npaths = [{:?}]\nread-from = \"{read_from}\"\n[sink]\ntype = \"collector\"\nurl = \"https://{url}\"\n[sink.tls]\nca-file = {:?}\nserver-name = \"localhost\"\ncert-file = {:?}\nkey-file = {:?}\n",
            state.display().to_string(),
            log.display().to_string(),
            pki.file("ca.pem"),
            pki.file(&format!("agent-{id}.pem")),
            pki.file(&format!("agent-{id}-key.pem")),
        ),
    )?;
    set_private(&config)?;
    Ok(config)
}

/// An agent run under `/usr/bin/time`, which reports the rusage of all its threads at exit.
struct Agent {
    time: Child,
    pid: u32,
    rusage: PathBuf,
    state: PathBuf,
}

/// What `wait4` says of an ended agent.
#[derive(Debug, Clone, Copy, Default)]
struct Rusage {
    cpu: f64,
    voluntary: u64,
}

impl Agent {
    fn start(bin: &Path, config: &Path) -> Result<Agent> {
        let dir = config.parent().context("config dir")?;
        let rusage = dir.join("rusage");
        let time = Command::new("/usr/bin/time")
            .args(["-f", "%U %S %w"])
            .arg("-o")
            .arg(&rusage)
            .arg(bin)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("agent.err"))?)
            .spawn()
            .context("starting /usr/bin/time authtrail run")?;
        let children = format!("/proc/{0}/task/{0}/children", time.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&children)
                .ok()
                .and_then(|t| t.split_whitespace().next().and_then(|p| p.parse().ok()))
            {
                break pid;
            }
            if Instant::now() > deadline {
                bail!("authtrail run did not start");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let state = dir.join("state");
        let agent = Agent {
            time,
            pid,
            rusage,
            state,
        };
        // Running once the status file is there.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !agent.state.join("status.json").exists() {
            if Instant::now() > deadline {
                bail!("authtrail run wrote no status file in 30 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(agent)
    }

    /// Waits until the agent has committed the whole log (`len` bytes: the checkpoint file is
    /// at its end) and the collector took everything (no batch file left in the spool). Read
    /// from the files themselves, not the status file, whose cadence differs between builds.
    fn wait_shipped(&self, len: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.shipped(len) {
            if Instant::now() > deadline {
                bail!("the agent did not ship its log in {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// [`Agent::wait_shipped`]'s condition, looked at once.
    fn shipped(&self, len: u64) -> bool {
        let committed = std::fs::read_to_string(self.state.join("checkpoints.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v["streams"][0]["position"]["offset"].as_u64() == Some(len));
        committed
            && !std::fs::read_dir(self.state.join("spool"))
                .map(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".batch"))
                })
                .unwrap_or(true)
    }

    /// Events the agent says it sent (from the status file it writes when it stops).
    fn sent_events(state: &Path) -> u64 {
        std::fs::read_to_string(state.join("status.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["shipping"]["sent-events"].as_u64())
            .unwrap_or(0)
    }

    /// SIGTERM, then the rusage of its whole life.
    fn stop(mut self) -> Result<Rusage> {
        Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        let status = self.time.wait()?;
        if !status.success() {
            bail!("authtrail run did not stop cleanly ({status})");
        }
        let text = std::fs::read_to_string(&self.rusage)?;
        let last = text.lines().last().unwrap_or_default();
        let f: Vec<&str> = last.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        match (num(0), num(1), num(2)) {
            (Some(u), Some(s), Some(w)) => Ok(Rusage {
                cpu: u + s,
                voluntary: w as u64,
            }),
            _ => bail!("cannot read /usr/bin/time's output {last:?}"),
        }
    }
}

/// How long an agent is left alone after it started, before a window opens.
const SETTLE: Duration = Duration::from_secs(2);

/// Starts an agent, lets it settle, stops it: the voluntary switches of a life without a
/// window, subtracted from the runs with one.
fn start_stop_switches(bin: &Path, config: &Path) -> Result<u64> {
    let agent = Agent::start(bin, config)?;
    std::thread::sleep(SETTLE);
    Ok(agent.stop()?.voluntary)
}

/// Runs `strace -f -c` on `pid` for `secs`; (fsync-like calls, threads started).
fn strace_counts(pid: u32, secs: u64) -> Result<(u64, u64)> {
    let out = std::env::temp_dir().join(format!("authtrail-bench-strace-{pid}"));
    let mut strace = Command::new("strace")
        .args(["-f", "-c", "-qq", "-o"])
        .arg(&out)
        .args(["-e", "trace=fsync,fdatasync,clone,clone3", "-p"])
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting strace")?;
    std::thread::sleep(Duration::from_secs(secs));
    Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status()?;
    strace.wait()?;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    std::fs::remove_file(&out).ok();
    let calls = |names: &[&str]| -> u64 {
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let name = f.last()?;
                names
                    .contains(name)
                    .then(|| f.get(3).and_then(|c| c.parse::<u64>().ok()))
                    .flatten()
            })
            .sum()
    };
    Ok((calls(&["fsync", "fdatasync"]), calls(&["clone", "clone3"])))
}

/// `write_bytes` of `/proc/PID/io`: bytes this process caused to be sent to the storage layer
/// (counted when a page is first dirtied).
fn write_bytes(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .with_context(|| format!("reading /proc/{pid}/io"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no write_bytes in /proc/PID/io")
}

/// Each line of `template` without its timestamp: the writer puts the time of writing in front.
fn untimed_lines(template: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(template)?
        .lines()
        .map(|l| l.split_once(' ').map_or("", |(_, rest)| rest))
        .map(|rest| format!(" {rest}"))
        .collect())
}

fn buffer(bins: &Bins, pki: &Pki, dir: &Path, s: &Settings) -> Result<()> {
    let collector = Collector::start(&bins.collector, pki, dir)?;
    let template = dir.join("template.log");
    generate(&template, BUFFER_LINES, 5)?;
    let lines = untimed_lines(&template)?;
    // The writing, then the memory buffer's checkpoint interval (5 s) and a margin.
    let window = BUFFER_LINES / s.rate.max(1) + 7;
    for (name, table) in [
        ("disk", ""),
        ("memory", "[sink.buffer]\ntype = \"memory\"\n"),
        ("none", "[sink.buffer]\ntype = \"none\"\n"),
    ] {
        let d = dir.join(name);
        std::fs::remove_dir_all(&d).ok();
        std::fs::create_dir_all(&d)?;
        let log = d.join("auth.log");
        std::fs::write(&log, b"")?;
        let config = agent_config(pki, 0, &d, &log, &collector.addr, "end", &s.agent_config)?;
        let mut text = std::fs::read_to_string(&config)?;
        text.push_str(table);
        std::fs::write(&config, text)?;
        let agent = Agent::start(&bins.agent, &config)?;
        std::thread::sleep(SETTLE);
        let written0 = write_bytes(agent.pid)?;
        let traced = std::thread::scope(|scope| {
            let pid = agent.pid;
            let strace = scope.spawn(move || strace_counts(pid, window));
            std::thread::sleep(Duration::from_millis(300));
            let w = write_trickle(&log, &lines, s.rate, s.per_append);
            w.and_then(|()| strace.join().map_err(|_| anyhow::anyhow!("strace thread")))
        })?;
        let (fsyncs, _) = traced?;
        let len = std::fs::metadata(&log)?.len();
        agent.wait_shipped(len, Duration::from_secs(60))?;
        let written = write_bytes(agent.pid)? - written0;
        let state = agent.state.clone();
        agent.stop()?;
        let events = Agent::sent_events(&state).max(1);
        let per = 10_000.0 / events as f64;
        println!(
            "buffer {name}: {} lines at {} lines/s ({} events): {:.0} KiB written to disk and {:.0} fsyncs per 10,000 events",
            BUFFER_LINES,
            s.rate,
            events,
            written as f64 * per / 1024.0,
            fsyncs as f64 * per,
        );
    }
    collector.stop()?;
    Ok(())
}

fn idle(bins: &Bins, pki: &Pki, dir: &Path, s: &Settings) -> Result<()> {
    let collector = Collector::start(&bins.collector, pki, dir)?;
    let log = dir.join("auth.log");
    generate(&log, 1_000, 9)?;
    let window = Duration::from_secs(s.idle_secs);
    let run = |n: &str| -> Result<PathBuf> {
        let d = dir.join(n);
        std::fs::remove_dir_all(&d).ok();
        agent_config(pki, 0, &d, &log, &collector.addr, "end", &s.agent_config)
    };
    let base = start_stop_switches(&bins.agent, &run("base")?)?;
    let agent = Agent::start(&bins.agent, &run("measured")?)?;
    std::thread::sleep(SETTLE);
    let cpu0 = cpu_secs(agent.pid)?;
    std::thread::sleep(window);
    let cpu = cpu_secs(agent.pid)? - cpu0;
    let life = agent.stop()?;
    let agent = Agent::start(&bins.agent, &run("strace")?)?;
    std::thread::sleep(SETTLE);
    let (fsyncs, threads) = strace_counts(agent.pid, s.strace_secs)?;
    agent.stop()?;
    collector.stop()?;
    let secs = window.as_secs_f64();
    println!(
        "idle {} s, quiet log: agent CPU {:.4}%, {:.2} wakeups/s, {:.2} fsyncs/s, {} threads started in {} s",
        s.idle_secs,
        cpu / secs * 100.0,
        life.voluntary.saturating_sub(base) as f64 / secs,
        fsyncs as f64 / s.strace_secs as f64,
        threads,
        s.strace_secs
    );
    Ok(())
}

/// Appends `lines` (timestamps replaced by the time of writing) to `log` at `rate` lines/s,
/// `per_append` lines per write, for as many lines as given.
fn write_trickle(log: &Path, lines: &[String], rate: u64, per_append: u64) -> Result<()> {
    let mut file = std::fs::OpenOptions::new().append(true).open(log)?;
    let per = per_append.max(1) as usize;
    let every = Duration::from_nanos(1_000_000_000 * per as u64 / rate.max(1));
    let start = Instant::now();
    let mut buf = String::new();
    for (i, group) in lines.chunks(per).enumerate() {
        let due = start + every * i as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        buf.clear();
        let stamp = rfc3339_now();
        for line in group {
            buf.push_str(&stamp);
            buf.push_str(line);
            buf.push('\n');
        }
        file.write_all(buf.as_bytes())?;
    }
    Ok(())
}

fn trickle(bins: &Bins, pki: &Pki, dir: &Path, s: &Settings, backlog_cpu_per_m: f64) -> Result<()> {
    let collector = Collector::start(&bins.collector, pki, dir)?;
    let count = s.rate * s.trickle_secs;
    let template = dir.join("template.log");
    generate(&template, count, 5)?;
    let lines = untimed_lines(&template)?;
    let prepare = |n: &str| -> Result<(PathBuf, PathBuf)> {
        let d = dir.join(n);
        std::fs::remove_dir_all(&d).ok();
        std::fs::create_dir_all(&d)?;
        let log = d.join("auth.log");
        std::fs::write(&log, b"")?;
        Ok((
            agent_config(pki, 0, &d, &log, &collector.addr, "end", &s.agent_config)?,
            log,
        ))
    };
    let base = start_stop_switches(&bins.agent, &prepare("base")?.0)?;
    let (config, log) = prepare("measured")?;
    let agent = Agent::start(&bins.agent, &config)?;
    std::thread::sleep(SETTLE);
    let cpu0 = cpu_secs(agent.pid)?;
    let t0 = Instant::now();
    write_trickle(&log, &lines, s.rate, s.per_append)?;
    let written = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(agent.pid)? - cpu0;
    let len = std::fs::metadata(&log)?.len();
    agent.wait_shipped(len, Duration::from_secs(60))?;
    let life = agent.stop()?;
    // fsyncs and threads: the same trickle, shorter, watched by strace.
    let (config, log) = prepare("strace")?;
    let agent = Agent::start(&bins.agent, &config)?;
    std::thread::sleep(SETTLE);
    let short = (s.rate * s.strace_secs) as usize;
    let traced = std::thread::scope(|scope| {
        let pid = agent.pid;
        let secs = s.strace_secs;
        let strace = scope.spawn(move || strace_counts(pid, secs));
        std::thread::sleep(Duration::from_millis(300));
        let w = write_trickle(&log, &lines[..short.min(lines.len())], s.rate, s.per_append);
        w.and_then(|()| strace.join().map_err(|_| anyhow::anyhow!("strace thread")))
    })?;
    let (fsyncs, threads) = traced?;
    agent.stop()?;
    let db = collector.db.clone();
    let (ccpu, crss) = collector.stop()?;
    let (events, alerts) = latencies(&db)?;
    let ms = |v: &[f64], p: f64| percentile(v, p) / 1000.0;
    println!(
        "trickle {} lines/s in {}-line appends for {:.0} s: agent CPU {:.3}% ({:.2} CPU-s per million lines, {:.1}x the backlog's {:.2}), {:.1} wakeups/s, {:.1} fsyncs/s, {:.1} threads started/s",
        s.rate,
        s.per_append,
        written,
        cpu / written * 100.0,
        cpu / count as f64 * 1e6,
        (cpu / count as f64 * 1e6) / backlog_cpu_per_m,
        backlog_cpu_per_m,
        life.voluntary.saturating_sub(base) as f64 / written,
        fsyncs as f64 / s.strace_secs as f64,
        threads as f64 / s.strace_secs as f64,
    );
    println!(
        "  latency to the store: {} events p50 {:.0} ms, p99 {:.0} ms; {} alerts p50 {:.0} ms, p99 {:.0} ms; collector CPU {:.2} s, peak RSS {:.1} MiB",
        events.len(),
        ms(&events, 0.5),
        ms(&events, 0.99),
        alerts.len(),
        ms(&alerts, 0.5),
        ms(&alerts, 0.99),
        ccpu,
        crss as f64 / 1024.0
    );
    Ok(())
}

/// Microseconds from each stored event's `@timestamp` to its batch's `received_at`: (events,
/// alerts). The bodies are zstd NDJSON, read with the `sqlite3` and `zstd` programs.
fn latencies(db: &Path) -> Result<(Vec<f64>, Vec<f64>)> {
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg("SELECT received_at, hex(body) FROM batches")
        .output()
        .context("running sqlite3")?;
    if !out.status.success() {
        bail!("sqlite3 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (mut events, mut alerts) = (Vec::new(), Vec::new());
    for row in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((received, hex)) = row.split_once('|') else {
            continue;
        };
        let received: f64 = received.parse()?;
        let body = unhex(hex)?;
        let mut zstd = Command::new("zstd")
            .args(["-d", "-c", "-q"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("running zstd")?;
        let mut stdin = zstd.stdin.take().context("zstd stdin")?;
        let feeder = std::thread::spawn(move || stdin.write_all(&body));
        let ndjson = zstd.wait_with_output()?.stdout;
        let _ = feeder.join();
        for line in String::from_utf8_lossy(&ndjson).lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let Some(at) = v["@timestamp"].as_str().and_then(parse_rfc3339_us) else {
                continue;
            };
            match v["event"]["kind"].as_str() {
                Some("event") => events.push(received - at),
                Some("alert") => alerts.push(received - at),
                _ => {}
            }
        }
    }
    Ok((events, alerts))
}

fn unhex(hex: &str) -> Result<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => bail!("not a hex digit"),
    };
    hex.as_bytes()
        .chunks(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(*p.get(1).unwrap_or(&b'0'))?))
        .collect()
}

/// The `p` quantile (0..1) of `v` (0 when empty).
/// The median: the middle value, or the mean of the middle two.
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// One fan-in run: `agents` agents, each with its own copy of a `lines`-line log, into one
/// fresh collector.
struct FanIn {
    lines: u64,
    events_per_s: f64,
    sent: u64,
    stored: u64,
    agent_cpu: f64,
    collector_cpu: f64,
    collector_rss_kib: u64,
    /// The collector's 503 and 429 answers (from its log).
    busy: usize,
}

/// Events in a collector's store, read while it runs (read-only; `None` until the store exists
/// or when a read fails, so that a failed read never counts as a change).
struct StoreCount {
    db: PathBuf,
    conn: Option<rusqlite::Connection>,
}

impl StoreCount {
    fn new(db: &Path) -> StoreCount {
        StoreCount {
            db: db.to_owned(),
            conn: None,
        }
    }

    fn events(&mut self) -> Option<u64> {
        if self.conn.is_none() && self.db.exists() {
            self.conn = rusqlite::Connection::open_with_flags(
                &self.db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .ok();
        }
        self.conn
            .as_ref()
            .and_then(|c| {
                c.query_row("SELECT COALESCE(SUM(events), 0) FROM batches", [], |r| {
                    r.get::<_, i64>(0)
                })
                .ok()
            })
            .and_then(|n| u64::try_from(n).ok())
    }
}

fn fan_in(
    bins: &Bins,
    pki: &Pki,
    dir: &Path,
    agents: usize,
    lines: u64,
    extra: &str,
) -> Result<FanIn> {
    std::fs::remove_dir_all(dir).ok();
    let collector = Collector::start(&bins.collector, pki, dir)?;
    let log = dir.join("auth.log");
    generate(&log, lines, 1)?;
    let len = std::fs::metadata(&log)?.len();
    let configs = (0..agents)
        .map(|i| {
            agent_config(
                pki,
                i,
                &dir.join(format!("agent-{i}")),
                &log,
                &collector.addr,
                "beginning",
                extra,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let mut running = Vec::new();
    for c in &configs {
        running.push(Agent::start(&bins.agent, c)?);
    }
    // The backlog ends when the store holds every event: the first time the store showed the
    // count it holds once every agent's checkpoints are at the end of its log and nothing waits
    // to be sent. Not when the checkpoint file gets there: with `[sink.buffer] type = "memory"`
    // positions are persisted at most every `checkpoint-interval` (5 s), after the collector
    // acknowledged them, which would count up to that interval as drain time.
    let deadline = start + Duration::from_secs(900);
    let mut store = StoreCount::new(&collector.db);
    let mut last = (0, start);
    loop {
        let done = running.iter().all(|a| a.shipped(len));
        if let Some(count) = store.events()
            && count != last.0
        {
            last = (count, Instant::now());
        }
        if done {
            break;
        }
        if Instant::now() > deadline {
            bail!("the agents did not ship their logs in 900 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // A store never read (it could not be opened) leaves the old end: everything shipped.
    let wall = if last.0 == 0 {
        start.elapsed()
    } else {
        last.1.duration_since(start)
    }
    .as_secs_f64();
    let (mut agent_cpu, mut sent) = (0.0, 0);
    for a in running {
        let state = a.state.clone();
        agent_cpu += a.stop()?.cpu;
        sent += Agent::sent_events(&state);
    }
    let (collector_cpu, collector_rss_kib) = (
        cpu_secs(collector.child.id())?,
        peak_rss_kib(collector.child.id())?,
    );
    let config = collector.config.clone();
    let log = collector.log.clone();
    collector.stop()?;
    let busy = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(": 503 ") || l.contains(": 429 "))
        .count();
    let out = Command::new(&bins.collector)
        .args(["stats", "--since", "100000d", "--config"])
        .arg(&config)
        .output()?;
    let stored = crate::bench::stored_events(&String::from_utf8_lossy(&out.stdout))
        .context("authtrail-collector stats printed no event table")?;
    Ok(FanIn {
        lines: lines * agents as u64,
        events_per_s: stored as f64 / wall,
        sent,
        stored,
        agent_cpu,
        collector_cpu,
        collector_rss_kib,
        busy,
    })
}

/// The `nats` scenario: the single-agent backlog through a collector with `[store] type =
/// "nats"` into a one-node JetStream on loopback (events/s until the agent's spool is empty,
/// i.e. every batch acknowledged by JetStream), then `consume` from the stream into SQLite
/// (events/s until the store holds them all); both against the direct SQLite path of the same
/// run (`backlog`), with each process's CPU and peak RSS.
fn nats(bins: &Bins, pki: &Pki, dir: &Path, s: &Settings, backlog: &FanIn) -> Result<()> {
    std::fs::remove_dir_all(dir).ok();
    std::fs::create_dir_all(dir.join("jetstream"))?;
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port();
    let mut server = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.join("jetstream"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server (apt-get install nats-server)")?;
    let store = format!(
        "[store]\ntype = \"nats\"\nservers = [\"nats://127.0.0.1:{port}\"]\nmax-bytes = 1073741824\n"
    );
    let result = (|| {
        let collector = Collector::start_with(&bins.collector, pki, dir, &store)?;
        let log = dir.join("auth.log");
        generate(&log, s.backlog_lines, 1)?;
        let len = std::fs::metadata(&log)?.len();
        let config = agent_config(
            pki,
            0,
            &dir.join("agent-0"),
            &log,
            &collector.addr,
            "beginning",
            &s.agent_config,
        )?;
        let start = Instant::now();
        let agent = Agent::start(&bins.agent, &config)?;
        agent.wait_shipped(len, Duration::from_secs(900))?;
        let publish_wall = start.elapsed().as_secs_f64();
        let state = agent.state.clone();
        agent.stop()?;
        let sent = Agent::sent_events(&state);
        let (collector_cpu, collector_rss) = collector.stop()?;

        let consumer_config = dir.join("consumer.toml");
        let data = dir.join("consumer-data");
        std::fs::write(
            &consumer_config,
            format!("data-dir = {:?}\n{store}", data.display().to_string()),
        )?;
        set_private(&consumer_config)?;
        let start = Instant::now();
        let mut consumer = Command::new(&bins.collector)
            .args(["consume", "--config"])
            .arg(&consumer_config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let db = data.join("authtrail.db");
        let deadline = Instant::now() + Duration::from_secs(900);
        let stored = loop {
            let stored = if db.exists() {
                let out = Command::new(&bins.collector)
                    .args(["stats", "--since", "100000d", "--db"])
                    .arg(&db)
                    .output()?;
                crate::bench::stored_events(&String::from_utf8_lossy(&out.stdout)).unwrap_or(0)
            } else {
                0
            };
            if stored >= sent || Instant::now() > deadline {
                break stored;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let consume_wall = start.elapsed().as_secs_f64();
        let (consumer_cpu, consumer_rss) = (cpu_secs(consumer.id())?, peak_rss_kib(consumer.id())?);
        terminate(&mut consumer)?;
        let (to_stream, to_store) = (sent as f64 / publish_wall, stored as f64 / consume_wall);
        println!(
            "nats: 1 agent, {} lines: into JetStream {to_stream:.0} events/s = {:.0}% of the direct SQLite path's {:.0}/s (collector CPU {collector_cpu:.2} s, peak RSS {:.1} MiB; direct: CPU {:.2} s, peak RSS {:.1} MiB); consume into SQLite {to_store:.0} events/s = {:.0}% (consumer CPU {consumer_cpu:.2} s, peak RSS {:.1} MiB); {stored} events stored for {sent} sent ({})",
            s.backlog_lines,
            to_stream * 100.0 / backlog.events_per_s,
            backlog.events_per_s,
            collector_rss as f64 / 1024.0,
            backlog.collector_cpu,
            backlog.collector_rss_kib as f64 / 1024.0,
            to_store * 100.0 / backlog.events_per_s,
            consumer_rss as f64 / 1024.0,
            if stored == sent {
                "each once"
            } else {
                "MISMATCH"
            },
        );
        Ok(())
    })();
    let _ = terminate(&mut server);
    result
}

/// Writes a generated log of `lines` lines (RFC 3339, `seed`).
fn generate(path: &Path, lines: u64, seed: u64) -> Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    loggen::generate(
        &mut file,
        &loggen::Options {
            lines,
            seed,
            format: loggen::Format::Rfc3339,
            ..loggen::Options::default()
        },
    )?;
    file.flush()?;
    Ok(())
}

fn set_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn terminate(child: &mut Child) -> Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    child.wait()?;
    Ok(())
}

fn cpu_secs(pid: u32) -> Result<f64> {
    crate::bench::cpu_secs(pid)
}

fn peak_rss_kib(pid: u32) -> Result<u64> {
    crate::bench::peak_rss_kib(pid)
}

/// The time now as rsyslog's RFC 3339 with microseconds, UTC.
fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let c = agent_core::Timestamp {
        secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos(),
    }
    .to_civil();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos / 1000
    )
}

/// Microseconds since the epoch of an RFC 3339 UTC time (`...Z` or `+00:00`).
fn parse_rfc3339_us(s: &str) -> Option<f64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-');
    let y: i32 = d.next()?.parse().ok()?;
    let m: u8 = d.next()?.parse().ok()?;
    let day: u8 = d.next()?.parse().ok()?;
    let time = time.trim_end_matches('Z').trim_end_matches("+00:00");
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let micros = if frac.is_empty() {
        0.0
    } else {
        frac.parse::<f64>().ok()? / 10f64.powi(i32::try_from(frac.len()).ok()?) * 1e6
    };
    let days = agent_core::time::days_from_civil(y, m, day);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) as f64) * 1e6 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_read_back() {
        assert_eq!(
            parse_rfc3339_us("1970-01-02T00:00:01.5Z"),
            Some((86_401.5 * 1e6_f64).round())
        );
        assert_eq!(
            parse_rfc3339_us("1970-01-01T00:00:00.000250+00:00"),
            Some(250.0)
        );
        let now = rfc3339_now();
        assert!(parse_rfc3339_us(&now).is_some(), "{now}");
    }

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(median(&[3.0, 1.0]), 2.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
